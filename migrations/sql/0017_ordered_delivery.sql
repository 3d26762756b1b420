-- Ordered delivery (FIFO) per agency or per camera, for receivers that need events in order
-- (docs/adr/0019-ordered-delivery.md). `none` keeps the batched, concurrent engine; it is
-- what every agency registered before this migration had.
--
-- The order key is `delivery.order_seq`, handed out after commit, not at insert: a sequence
-- value taken inside an ingest transaction (like detection_event.id) can commit after a
-- larger one is already visible and sent, and would then have to go before it. Instead the
-- ordered claim (hub/delivery/ordering.py), under a transaction-scoped advisory lock per
-- agency, numbers the agency's open rows that have no key yet, behind every key handed out
-- before. A row that commits later is numbered by a later claim, so it always sorts after
-- every row that was visible (and could have been sent) before it, as the feed sequencer's
-- positions do (0006_feeds.sql).
-- Rows numbered in one pass all committed since the last pass; among them the order is
-- their transaction's start (`created_at` is now() of the ingest transaction), then capture
-- time, then event id. Any order among them is consistent with commit order except one that
-- puts B before A where A committed before B began; then A also began before B, so ordering
-- by start time never does that. Within one ingest request (one start time) capture time
-- wins: ingest inserts a batch in event id order (for its lock order), which is random.
-- `camera_id` is copied from the event at numbering, so camera mode finds each camera's head
-- without reading events. Both stay NULL for agencies without ordering: their hot path
-- writes nothing more than before, and the partial indexes below hold none of their rows.
SET LOCAL lock_timeout = '5s';

ALTER TABLE agency ADD COLUMN IF NOT EXISTS ordering text NOT NULL DEFAULT 'none';
ALTER TABLE agency ADD CONSTRAINT agency_ordering_check
    CHECK (ordering IN ('none', 'agency', 'camera'));

ALTER TABLE delivery
    ADD COLUMN IF NOT EXISTS order_seq bigint,
    ADD COLUMN IF NOT EXISTS camera_id text;

CREATE SEQUENCE IF NOT EXISTS delivery_order_seq AS bigint;

-- The head of an agency's queue (agency mode) and of each camera's (camera mode): the open
-- numbered rows in key order. Delivered, dead and withheld rows leave these indexes, so a
-- head is found in one probe however long the agency's history.
CREATE INDEX delivery_order_idx ON delivery (agency_id, order_seq)
    WHERE order_seq IS NOT NULL AND status IN ('pending', 'retrying', 'in_flight');
CREATE INDEX delivery_camera_order_idx ON delivery (agency_id, camera_id, order_seq)
    WHERE order_seq IS NOT NULL AND status IN ('pending', 'retrying', 'in_flight');
