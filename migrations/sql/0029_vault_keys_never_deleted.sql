-- pii_attribute loses its foreign key to pii_subject_key; pii_subject_key refuses DELETE
-- instead (issue 17: PostgreSQL's CPU per ingested event).
--
-- The key checked an invariant the vault already keeps, at a price on every sealed item:
-- a lookup of the subject's key row FOR KEY SHARE, which also writes a lock on that row, for
-- each of the ~60 attributes of an ingest batch (0.4-0.5 ms per batch with pgbench, about a
-- third of the vault's statement). The invariant holds without it:
-- - ingest stores an item only beside the key row it was sealed under: the items of new
--   subjects join the key rows the same statement created (RETURNING), those of known
--   subjects are sealed under the key rows read in the same transaction;
-- - a key row is never deleted: forgetting a subject shreds its key in place (wrapped_key
--   NULL, shredded_at set), so its row stays, and every item pointing at it stays readable
--   as "shredded".
-- What the foreign key guarded against is a DELETE of a key row; the trigger below makes
-- that an error for every statement, at no cost to inserts. (TRUNCATE, which only a test or
-- an operator emptying the whole vault runs, is left alone.)
SET LOCAL lock_timeout = '5s';

ALTER TABLE pii_attribute DROP CONSTRAINT IF EXISTS pii_attribute_subject_fkey;

CREATE FUNCTION pii_subject_key_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'pii_subject_key rows are never deleted: forgetting a subject shreds its key in place'
        USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER pii_subject_key_never_deleted BEFORE DELETE ON pii_subject_key
    FOR EACH STATEMENT EXECUTE FUNCTION pii_subject_key_kept();
