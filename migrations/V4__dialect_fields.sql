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

-- Update User Contact finds a contact by the user's email address or chat id. The keys are
-- lowercased (email addresses are matched in any case, and so are chat ids), and indexed so
-- that the lookup does not scan every contact of a large org.
CREATE FUNCTION contact_user_keys(emails jsonb, ims jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY(
        SELECT lower(e->>'value') FROM jsonb_array_elements(COALESCE(emails, '[]')) e
        UNION
        SELECT lower(i->>'value') FROM jsonb_array_elements(COALESCE(ims, '[]')) i)
$$;

CREATE INDEX contacts_user_keys ON contacts USING gin (contact_user_keys(emails, ims));
