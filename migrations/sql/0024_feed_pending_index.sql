-- The feed sequencer reads its queue through an index; one GIN index fewer per sequenced
-- event (issue 17).
--
-- feed_pending_queued_idx: the sequencer picks the oldest committed rows
-- (`ORDER BY queued_at LIMIT n`) and now deletes exactly those by ctid. Without the index the
-- pick was a sequential scan, and the delete a hash join over a second one: both read every
-- page the queue's dead rows fill until a VACUUM frees them (autovacuum can be off or behind,
-- and between its visits a naptime of ingest leaves hundreds of thousands of dead rows). With
-- it, a run reads the live head of the queue, whatever lies dead behind it; index entries of
-- deleted rows are marked dead by the first scan that meets them. Measured with
-- bench/ingest_profile.py (pg_stat_statements, 1,000 batches of 100): 9.6 -> 5.0 ms per
-- sequencer run of ~210 events, a third of PostgreSQL's time per ingest batch before.
-- The queue is small (seconds of backlog), so the index costs each ingest batch about a
-- hundred b-tree inserts into a few hot pages.
--
-- feed_entry_media_idx goes: the one query that used it ("feed events naming this image",
-- hub/feeds/repository.py) now finds the events through detection_event_media_idx, which
-- holds the same arrays, and reaches feed_entry by its unique (event_pk, captured_at) key.
-- The sequencer no longer inserts every event's image digests into a second GIN index.
--
-- CREATE INDEX on feed_pending takes a SHARE lock (ingest's inserts wait) for as long as
-- the build of a table of seconds of backlog lasts: milliseconds, bounded by lock_timeout.
SET LOCAL lock_timeout = '5s';

CREATE INDEX IF NOT EXISTS feed_pending_queued_idx ON feed_pending (queued_at);
DROP INDEX IF EXISTS feed_entry_media_idx;
