-- Which broker users may import into which orgs (CONTACT_IMPORT_AUTHORIZATION=grants).
-- user_id is the RabbitMQ user a producer logs in as, which the broker stamps into the
-- message's user_id property; org_id '*' grants every org.
CREATE TABLE org_grants (
    user_id    text        NOT NULL,
    org_id     text        NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, org_id)
);
