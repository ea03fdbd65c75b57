-- Fields that the other seed APIs carry (Save User Contacts, DocuSign contacts), kept in the
-- one canonical contact so a contact reads the same whichever dialect stored it.
ALTER TABLE contacts
    ADD COLUMN middle_name                 text,
    ADD COLUMN birth_date                  date,
    ADD COLUMN wedding_date                date,
    ADD COLUMN anniversary_date            date,
    -- Save User Contacts' column1..column5, as {"column1": "…"}
    ADD COLUMN custom_fields               jsonb,
    ADD COLUMN shared                      boolean,
    ADD COLUMN cloud_provider              text,
    ADD COLUMN cloud_provider_container_id text,
    ADD COLUMN signing_group               text,
    ADD COLUMN signing_group_name          text,
    ADD COLUMN signing_group_users         jsonb;

-- An org's contact groups, created the first time a contact joins one by name
-- (Save User Contacts' groupName); contacts.groups holds the names.
CREATE TABLE contact_groups (
    org_id     text        NOT NULL,
    name       text        NOT NULL,
    group_id   uuid        NOT NULL DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, name),
    UNIQUE (group_id)
);
