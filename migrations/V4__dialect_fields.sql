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

-- Update User Contact finds a contact by the user's email address or chat id, in any ASCII
-- case. The worker writes each list's values, ASCII-lowercased, beside the list (a list kept
-- by an update keeps its keys); the index makes the lookup a few index pages instead of a
-- scan of every contact of the org. Plain columns rather than an index on an expression over
-- the jsonb lists: computing that expression for every written row cost more than the rest
-- of the insert (+12 µs per contact against +5.5 µs, measured on 100,000 inserts).
ALTER TABLE contacts
    ADD COLUMN email_keys text[],
    ADD COLUMN im_keys    text[];

UPDATE contacts SET
    email_keys = ARRAY(SELECT translate(e->>'value', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
                       FROM jsonb_array_elements(emails) e)
    WHERE emails IS NOT NULL;
UPDATE contacts SET
    im_keys = ARRAY(SELECT translate(i->>'value', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
                    FROM jsonb_array_elements(ims) i)
    WHERE ims IS NOT NULL;

-- fastupdate off: with keys that are nearly all distinct, the pending list only defers the
-- same work and makes every lookup scan it too (bulk inserts were faster without it).
CREATE INDEX contacts_user_keys ON contacts USING gin ((email_keys || im_keys))
    WITH (fastupdate = off);
