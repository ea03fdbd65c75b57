-- Account credentials that the Save User Contacts dialect (`user-contacts.save`) checks: a
-- contact carrying a userName/password pair is stored only if the pair matches an account of
-- the batch's org. Only an argon2id hash (PHC string) is kept, never the password.
CREATE TABLE accounts (
    org_id        text        NOT NULL,
    user_name     text        NOT NULL,
    password_hash text        NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, user_name)
);
