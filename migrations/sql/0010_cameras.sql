-- Camera registry (issue 14): every camera belongs to exactly one edge node and lies in one
-- jurisdiction. Ingest rejects, per event, an event for a camera its node does not own, and
-- stamps the registry's jurisdiction on the stored record, so release policy never relies on
-- what an event claims. Expand step only: one new table, nothing in use is touched.
--
-- No backfill: the jurisdiction of a camera is not in the database (it lived in policy data),
-- so guessing one would widen who may see its events. Until an admin registers a node's
-- cameras (`hub nodes cameras add`), that node's events are rejected with a reason naming
-- the camera; the edge keeps them and tries again every 5 minutes
-- (docs/adr/0007-camera-registry.md).

CREATE TABLE camera (
    camera_id     text PRIMARY KEY CHECK (camera_id ~ '^[A-Za-z0-9_.:\-]{1,128}$'),
    node_id       uuid NOT NULL REFERENCES edge_node (id),
    jurisdiction  text NOT NULL CHECK (jurisdiction ~ '^[a-z0-9_.\-]{1,64}$'),
    description   text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text NOT NULL
);
-- Ingest looks up a batch's cameras by node on every request.
CREATE INDEX camera_node_idx ON camera (node_id, camera_id);
