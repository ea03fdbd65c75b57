-- Failed verifications of the credentials Save User Contacts batches carry: one row per
-- failed userName/password pair, per org and userName (a name that is no account counts
-- too, or the answer to it would be a free oracle). Every worker counts here, so a userName
-- whose failures within CONTACT_IMPORT_LOGIN_FAILURE_WINDOW reach
-- CONTACT_IMPORT_LOGIN_MAX_FAILURES is refused by all of them (429 too.many.attempts,
-- without verifying) until enough of its failures are older than the window. Times are the
-- database's (now()), so workers with skewed clocks agree. Rows older than the window are
-- deleted as new ones are recorded, so the table holds about one window of failures.
CREATE TABLE login_failures (
    id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id    text        NOT NULL,
    user_name text        NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now()
);
-- One userName's recent failures, counted before any password of it is verified.
CREATE INDEX login_failures_by_account ON login_failures (org_id, user_name, failed_at);
-- The expired ones, pruned.
CREATE INDEX login_failures_by_time ON login_failures (failed_at);
