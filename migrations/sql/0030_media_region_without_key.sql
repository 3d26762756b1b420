-- media_region loses its primary key (issue 17: PostgreSQL's CPU per ingested event).
--
-- Ingest records every region of a batch's images in its events statement: ~80 rows per
-- 100 events, each a b-tree insert into the (id) key besides the (sha256) index. No query
-- reads a region by its id: release, the scan and the console read an image's regions by
-- its hash (media_region_sha256_idx), and the scan replaces its own regions by hash and
-- source. The id column stays (GENERATED ALWAYS, so still unique by construction) for
-- whoever wants to name one row; only its index goes. Physical replication, which is what
-- the hub's hosts use (docs/cluster.md), does not need a key; logical replication of
-- DELETE would, and would have to add one back (REPLICA IDENTITY).
--
-- Dropping the key takes an ACCESS EXCLUSIVE lock on media_region for the moment of the
-- drop (ingest waits): bounded by lock_timeout, as migrations 0024 and 0026 do.
SET LOCAL lock_timeout = '5s';

ALTER TABLE media_region DROP CONSTRAINT IF EXISTS media_region_pkey;
