-- Contacts, keyed by org first: every statement of the worker filters on org_id, so one
-- org's batch can never reach another org's rows.
CREATE TABLE contacts (
    org_id                 text        NOT NULL,
    contact_id             uuid        NOT NULL,
    display_name           text,
    first_name             text,
    last_name              text,
    company_name           text,
    title                  text,
    address                jsonb,
    avatar_url             text,
    primary_contact_method text,
    source                 text,
    emails                 jsonb,
    phone_numbers          jsonb,
    sip_addresses          jsonb,
    ims                    jsonb,
    groups                 jsonb,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, contact_id)
);

-- One row per applied batch, written in the same transaction as its contacts: a redelivered
-- batch finds its row and replays the stored result instead of applying itself again.
CREATE TABLE import_batches (
    org_id       text        NOT NULL,
    batch_id     text        NOT NULL,
    -- a batch id reused for a different body is refused, not mistaken for a redelivery
    body_sha256  text        NOT NULL,
    status       text        NOT NULL,
    received     integer     NOT NULL,
    created      integer     NOT NULL,
    updated      integer     NOT NULL,
    failed       integer     NOT NULL,
    result       jsonb       NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, batch_id)
);

CREATE INDEX import_batches_processed_at ON import_batches (processed_at);
