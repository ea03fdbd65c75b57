-- Which message applied a batch: the x-send-id header of the message whose transaction
-- claimed the batch id (contact-import publish sets a new one for every message it sends).
-- A later message with the same batch id and another send id is a resend: its answer is the
-- stored result, marked `replayed`. NULL when the message had none (it is then never called
-- a resend). Nullable and without a default: adding it rewrites nothing.
ALTER TABLE import_batches ADD COLUMN send_id text;
