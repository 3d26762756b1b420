-- feed_entry loses its (camera_id, seq) index (issue 17: the feed sequencer's CPU per event).
--
-- No query reads feed_entry by camera: pages, offers and the live feed walk positions (seq,
-- the primary key) and probe entries by seq or by (event_pk, captured_at); a subscription's
-- or a reader's cameras are a filter on the rows those walks find, written
-- `cardinality($n) = 0 OR camera_id = ANY ($n)`. It was read by the first feed's per-reader
-- scan, which offers replaced (migration 0015). A feeds bench run (bench/feeds.py, 20,000
-- events, 20 readers, audiences filled and paged) left it at idx_scan 0, while the sequencer
-- still inserted every sequenced event into it: one b-tree insert of a text key per event.
--
-- DROP INDEX takes an ACCESS EXCLUSIVE lock on feed_entry for the moment of the drop
-- (readers and the sequencer wait): bounded by lock_timeout, as migrations 0024 and 0026 do.
SET LOCAL lock_timeout = '5s';

DROP INDEX IF EXISTS feed_entry_camera_idx;
