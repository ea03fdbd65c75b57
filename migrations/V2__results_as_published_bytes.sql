-- A batch's stored result becomes the exact bytes that were published: a replay repeats it
-- byte for byte, and storing ~1 MB of jsonb per 1,000-contact batch (JSON parsing plus pglz
-- compression in the server) took 40 of the 94 ms of a batch's transaction. lz4, where the
-- server has it, compresses several times faster than pglz.
ALTER TABLE import_batches
    ALTER COLUMN result DROP DEFAULT,
    ALTER COLUMN result TYPE bytea USING convert_to(result::text, 'UTF8');

DO $$
BEGIN
    ALTER TABLE import_batches ALTER COLUMN result SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'PostgreSQL was built without lz4; import_batches.result keeps pglz';
END $$;
