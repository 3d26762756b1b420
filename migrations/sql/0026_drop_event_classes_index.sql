-- detection_event loses its GIN index on classes (issue 17: ingest's CPU per batch).
--
-- No query reads detection_event by its classes: the feeds filter on feed_entry.classes
-- (hub/feeds/repository.py), delivery planning matches the batch it has just inserted in
-- memory (hub/delivery/repository/ledger.py), and retention, incidents and the console select
-- by time, camera, node or image. Yet every ingested event added its labels to this index
-- and, with fastupdate, every few thousand events one insert paid for merging the pending
-- list into the tree: CPU on each batch and a long statement now and then in ingest's p99.
-- A future search by label on stored events can bring it back (CREATE INDEX CONCURRENTLY
-- per partition).
--
-- DROP INDEX takes an ACCESS EXCLUSIVE lock on the partitioned table for the moment of the
-- drop: bounded by lock_timeout, as migration 0024 does.
SET LOCAL lock_timeout = '5s';

DROP INDEX IF EXISTS detection_event_classes_idx;
