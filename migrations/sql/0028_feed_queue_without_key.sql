-- feed_pending loses its primary key, and ingest's feed trigger its sort and its conflict
-- check (issue 17: PostgreSQL's CPU per ingested event).
--
-- Every accepted event is queued by the statement trigger of migration 0015, inside the
-- ingest transaction. A perf profile of PostgreSQL under bench/ingest_profile.py put the
-- trigger at 8.7 % of the server's CPU per batch: a b-tree insert into the (event_pk,
-- captured_at) key, the speculative insertion `ON CONFLICT DO NOTHING` needs (a probe and
-- a second WAL record per row) and a sort of the batch by id.
--
-- None of them is needed:
-- - the queued rows are fresh: their ids come from detection_event's sequence in this very
--   statement, so they cannot already be queued;
-- - a reviewer accepting a quarantined event queues it by the row trigger; accepting it
--   twice (accept, quarantine, accept) queues it twice, and the sequencer places it once
--   (feed_entry's unique (event_pk, captured_at) key, `ON CONFLICT DO NOTHING` there);
-- - the sequencer picks the queue's head through feed_pending_queued_idx and deletes by
--   ctid; the order it places events in is its own `ORDER BY e.id`, not the queue's;
-- - retention deletes queued rows of deleted events by a join: the queue holds seconds of
--   backlog, so that is a scan of a small table once per retention batch.
SET LOCAL lock_timeout = '5s';

CREATE OR REPLACE FUNCTION feed_queue_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO feed_pending (event_pk, captured_at)
    SELECT id, captured_at FROM inserted_events WHERE disposition = 'accepted';
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION feed_queue_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO feed_pending (event_pk, captured_at) VALUES (NEW.id, NEW.captured_at);
    RETURN NULL;
END
$$;

ALTER TABLE feed_pending DROP CONSTRAINT IF EXISTS feed_pending_pkey;
