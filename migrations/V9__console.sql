-- The operators' console (contact-import console): what the import history filters on and
-- shows, the dead letters recorded where they can be queried, and the console's users.

-- Written by the worker with the batch's result; NULL on rows written before.
ALTER TABLE import_batches
    -- the AMQP `type` (dialect) that applied the batch: the requester's answer is made from it
    ADD COLUMN message_type text,
    -- the broker user that published it (AMQP user_id), when it had one
    ADD COLUMN publisher    text,
    -- the distinct errorCodes of its failedContacts, for the history's error-code filter
    ADD COLUMN error_codes  text[],
    -- time spent applying it in its transaction, in milliseconds
    ADD COLUMN apply_ms     integer;

-- The history, newest first, for one org (keyset on processed_at, batch_id). IF NOT EXISTS:
-- on a large table, build them first with CREATE INDEX CONCURRENTLY (docs/operations.md),
-- since a migration's CREATE INDEX holds off the workers' writes until it is built.
CREATE INDEX IF NOT EXISTS import_batches_org_history
    ON import_batches (org_id, processed_at DESC, batch_id DESC);
CREATE INDEX IF NOT EXISTS import_batches_error_codes ON import_batches USING gin (error_codes)
    WHERE error_codes IS NOT NULL;

-- Every dead letter, copied from the dead-letter exchange's stream by the console's recorder
-- (one row per stream offset, so recording twice writes nothing). Looking at them here
-- neither reads nor rewrites the dead-letter queue. `settled` says what the console did
-- with the letter in the queue.
CREATE TABLE dead_letters (
    stream_offset bigint      PRIMARY KEY,
    batch_id      text        NOT NULL,
    org_id        text,
    reason        text        NOT NULL,
    error         text,
    attempts      integer,
    message_type  text,
    publisher     text,
    dead_at       timestamptz NOT NULL,
    headers       jsonb       NOT NULL,
    body          bytea       NOT NULL,
    settled       text        CHECK (settled IN ('replayed', 'purged')),
    settled_by    text,
    settled_at    timestamptz
);
CREATE INDEX dead_letters_history ON dead_letters (dead_at DESC, stream_offset DESC);
CREATE INDEX dead_letters_org_history ON dead_letters (org_id, dead_at DESC, stream_offset DESC);
CREATE INDEX dead_letters_batch ON dead_letters (batch_id);
-- The overview's count of letters waiting.
CREATE INDEX dead_letters_waiting ON dead_letters (dead_at) WHERE settled IS NULL;

-- Where the recorder goes on in the stream: kept apart from the rows, which pruning deletes.
CREATE TABLE dead_letter_stream (
    stream      text   PRIMARY KEY,
    next_offset bigint NOT NULL
);

-- The console's users: an argon2id hash (PHC string), never a password; a role; the orgs
-- they may see ('*' for every org).
CREATE TABLE console_users (
    name            text        PRIMARY KEY,
    password_hash   text        NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    role            text        NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    orgs            text[]      NOT NULL CHECK (cardinality(orgs) > 0),
    failed_logins   integer     NOT NULL DEFAULT 0,
    locked_until    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Signed-in sessions, by the SHA-256 of their cookie's token (a stolen table gives no
-- cookie). Shared by every console replica; logging out deletes the row.
CREATE TABLE console_sessions (
    token_sha256 text        PRIMARY KEY,
    user_name    text        NOT NULL REFERENCES console_users (name) ON DELETE CASCADE,
    expires_at   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
