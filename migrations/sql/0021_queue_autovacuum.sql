-- Autovacuum of the feed queue by dead rows, not by table size (issue 17, ADR 0026).
--
-- feed_pending is a queue: ingest's trigger inserts a row for every accepted event and the
-- feed sequencer deletes it within about a second, so the table's live rows are a second's
-- backlog while its dead rows grow at the ingest rate (5,000-10,000 a second under load).
-- The sequencer picks its rows with a sequential scan (`ORDER BY queued_at LIMIT n`, no index
-- on queued_at), so every run reads every page those dead rows fill until a VACUUM frees them:
-- in bench/ingest.py, ~110,000 dead rows left by one phase raised the next phase's PostgreSQL
-- CPU per ingest batch by a third.
--
-- The server's defaults trigger on 50 + 20 % of the live rows. Live rows are few most of the
-- time, but after an outage the backlog is millions of rows and 20 % of it is hundreds of
-- thousands of dead rows before the first vacuum, exactly when the sequencer is busiest.
-- * autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000: vacuum once
--   5,000 rows are dead, whatever the backlog (under load: at every autovacuum visit; idle:
--   never). 5,000 is one sequencer run's batch (SEQUENCE_BATCH) and about 50 pages.
-- * autovacuum_vacuum_cost_delay = 0: the table stays small (dead rows of one naptime, tens
--   of MB at most), so throttling only keeps the dead rows longer; the default 2 ms delay
--   would stretch each vacuum of it several times over.
-- * autovacuum_vacuum_insert_* and the analyze settings stay at the server's: deletes follow
--   every insert within a second, so the dead-row trigger always fires first, and the
--   sequencer's pick is a sequential scan whatever the statistics say.
-- * vacuum_truncate stays on: returning emptied tail pages is what shrinks the sequencer's
--   scan after a backlog drains (the brief ACCESS EXCLUSIVE lock it takes is conditional and
--   given up as soon as a writer waits).
-- Autovacuum visits a database at most once per autovacuum_naptime (a server setting, one
-- minute by default), so between visits the dead rows still grow to a naptime's worth of
-- ingest (300,000 at 5,000 events/s); lowering the naptime is the operator's call. With
-- autovacuum off (the server setting), none of these settings has any effect.
--
-- Setting autovacuum storage parameters takes a SHARE UPDATE EXCLUSIVE lock: ingest's inserts
-- and the sequencer go on while it runs.
SET LOCAL lock_timeout = '5s';

ALTER TABLE feed_pending SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_cost_delay = 0
);
