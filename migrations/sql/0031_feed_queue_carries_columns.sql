-- The feed queue carries what the sequencer copies into feed_entry (issue 17: PostgreSQL's
-- CPU per ingested event).
--
-- The sequencer moved each queued event into feed_entry by joining it back to its
-- detection_event row (an index scan per event, with runtime partition pruning) for five
-- columns the ingest statement had in hand a moment before. Measured on 100-row runs
-- (bench/README.md, "tenth session"): the join was 0.35-0.48 ms of PostgreSQL CPU per 100
-- events, a third of each run; carrying the columns costs the trigger's insert 0.02 ms more.
--
-- The columns are added nullable (no table rewrite; feed_pending is a queue of milliseconds
-- of backlog in any case). Rows queued before this migration, by the old trigger, have no
-- camera_id, and the sequencer still joins those back to their event (hub/feeds/repository.py),
-- so no backfill is needed and a sequencer of the previous release, which ignores the new
-- columns and joins every row, keeps working against this schema.
SET LOCAL lock_timeout = '5s';

ALTER TABLE feed_pending
    ADD COLUMN camera_id      text,
    ADD COLUMN classes        text[],
    ADD COLUMN media_sha256   text[],
    ADD COLUMN jurisdiction   text,
    ADD COLUMN max_confidence real;

CREATE OR REPLACE FUNCTION feed_queue_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO feed_pending
        (event_pk, captured_at, camera_id, classes, media_sha256, jurisdiction, max_confidence)
    SELECT id, captured_at, camera_id, classes, media_sha256, payload ->> 'jurisdiction',
           max_confidence
    FROM inserted_events WHERE disposition = 'accepted';
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION feed_queue_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO feed_pending
        (event_pk, captured_at, camera_id, classes, media_sha256, jurisdiction, max_confidence)
    VALUES (NEW.id, NEW.captured_at, NEW.camera_id, NEW.classes, NEW.media_sha256,
            NEW.payload ->> 'jurisdiction', NEW.max_confidence);
    RETURN NULL;
END
$$;
