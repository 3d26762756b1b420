-- Policy: the decision log and the bundle registry. Expand step only (two new tables; no
-- table in use is touched, so no lock_timeout is needed). Nothing to contract.

-- One row per policy decision, written in batches by the decision log. The input is stored
-- as `system/log/mask` left it (no raw PII). Plain, not partitioned: rows are small and
-- append-only, ids are time-ordered (UUIDv7 layout) so the primary key grows at its right
-- edge, and a BRIN index on `at` serves time ranges and the retention sweep's batched
-- deletes. Partition by month here too if the sweep ever needs to drop whole months.
CREATE TABLE policy_decisions (
    decision_id  text PRIMARY KEY CHECK (length(decision_id) BETWEEN 1 AND 64),
    at           timestamptz NOT NULL,
    entrypoint   text NOT NULL,
    revision     text NOT NULL,
    latency_us   integer NOT NULL CHECK (latency_us >= 0),
    input        jsonb NOT NULL,
    result       jsonb NOT NULL,
    error        text
);
CREATE INDEX policy_decisions_at_brin ON policy_decisions USING brin (at);
CREATE INDEX policy_decisions_entrypoint_at_idx ON policy_decisions (entrypoint, at);
-- Failed-closed decisions are what an operator looks for first.
CREATE INDEX policy_decisions_errors_idx ON policy_decisions (at) WHERE error IS NOT NULL;

-- Uploaded policy bundles. Activation flips `status`; the partial unique index lets at most
-- one row be 'active' at any moment, so two admins activating at once cannot both win.
CREATE TABLE policy_bundles (
    revision      text PRIMARY KEY CHECK (length(revision) BETWEEN 1 AND 200),
    sha256        text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    uploaded_at   timestamptz NOT NULL DEFAULT now(),
    uploaded_by   text NOT NULL,
    activated_at  timestamptz,
    activated_by  text,
    status        text NOT NULL DEFAULT 'uploaded'
                  CHECK (status IN ('uploaded', 'active', 'retired', 'rejected')),
    manifest      jsonb NOT NULL,
    archive       bytea NOT NULL,
    test_report   jsonb,
    -- Active and retired bundles have been activated, and say when and by whom.
    CHECK (status NOT IN ('active', 'retired') OR (activated_at IS NOT NULL AND activated_by IS NOT NULL))
);
CREATE UNIQUE INDEX policy_bundles_one_active_idx ON policy_bundles ((true)) WHERE status = 'active';
CREATE INDEX policy_bundles_sha256_idx ON policy_bundles (sha256);
CREATE INDEX policy_bundles_uploaded_at_idx ON policy_bundles (uploaded_at);
