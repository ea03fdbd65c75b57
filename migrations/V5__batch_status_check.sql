-- A batch's status is one the worker writes: 'processing' while its transaction runs (never
-- committed), then the final one. The worker replays a stored result under its status, so
-- a row with any other value would leave that batch unanswerable; refuse such rows here.
ALTER TABLE import_batches
    ADD CONSTRAINT import_batches_status_known
    CHECK (status IN ('processing', 'succeeded', 'partial', 'failed'));
