-- The audit log as a transparency log (ADR 0011, superseding ADR 0004).
--
-- Why no lock: audit_append() serialised every audited write in the hub on one advisory lock
-- held until commit, because a gap-free hash chain needs to know its head. Now an append is a
-- plain INSERT in the caller's transaction (seq from a sequence: unique, cheap, never waited
-- on, and with gaps where a transaction rolled back). Order and integrity are assigned after
-- commit by one sealer (the worker job `seal_audit_job`, under a transaction-scoped advisory
-- lock, like the feed sequencer of 0006): it reads committed unsealed rows, gives each the next
-- position in an RFC 9162 Merkle tree (`leaf_index`, in the order the sealer saw them commit)
-- and its leaf hash, stores interior nodes at heights 8, 16, 24... (`audit_node`) and the tree's
-- right edge (`audit_tree`), and signs checkpoints (`audit_checkpoint`). A seq that commits
-- late simply gets a later leaf_index: nothing is skipped and nothing waits.
--
-- Rows written before this migration become unsealed and are integrated by the first sealer
-- run in seq order; their old chain hashes go (run `hub audit verify` before migrating).
SET LOCAL lock_timeout = '5s';

DROP FUNCTION audit_append(timestamptz, text, text, text, jsonb, text, text, bytea);

CREATE SEQUENCE audit_log_seq AS bigint OWNED BY audit_log.seq;
SELECT setval('audit_log_seq', coalesce(max(seq), 0) + 1, false) FROM audit_log;

ALTER TABLE audit_log
    ALTER COLUMN seq SET DEFAULT nextval('audit_log_seq'),
    DROP COLUMN prev_hash,
    DROP COLUMN hash,
    ADD COLUMN leaf_index bigint CHECK (leaf_index >= 0),
    ADD COLUMN leaf_hash bytea CHECK (length(leaf_hash) = 32),
    ADD CONSTRAINT audit_log_sealed_check CHECK ((leaf_index IS NULL) = (leaf_hash IS NULL));
-- Partial both ways: an append enters only the unsealed index; sealing moves it to this one.
CREATE UNIQUE INDEX audit_log_leaf_idx ON audit_log (leaf_index) WHERE leaf_index IS NOT NULL;
-- What the sealer reads next; rows leave this index as they are sealed.
CREATE INDEX audit_log_unsealed_idx ON audit_log (seq) WHERE leaf_index IS NULL;

-- The tree's right edge: its size, the roots of the perfect subtrees covering [0, size)
-- (largest first), and where pruning has cut the entries (a multiple of 256).
CREATE TABLE audit_tree (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    size          bigint NOT NULL CHECK (size >= 0),
    frontier      bytea[] NOT NULL,
    pruned_below  bigint NOT NULL DEFAULT 0 CHECK (pruned_below >= 0 AND pruned_below <= size),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Perfect subtree hashes at heights 8, 16, 24...: proofs fold at most 128 of them (or of the
-- leaves) per subtree, and they outlive pruned entries, so what remains still verifies.
CREATE TABLE audit_node (
    height  smallint NOT NULL CHECK (height > 0 AND height % 8 = 0),
    idx     bigint NOT NULL CHECK (idx >= 0),
    hash    bytea NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (height, idx)
);

-- Signed tree heads, kept; `witnessed_at` is set once a checkpoint reached the outside witness.
CREATE TABLE audit_checkpoint (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tree_size     bigint NOT NULL CHECK (tree_size >= 0),
    root_hash     bytea NOT NULL CHECK (length(root_hash) = 32),
    signed_at     timestamptz NOT NULL,
    key_id        text NOT NULL,
    signature     text NOT NULL,
    note          text NOT NULL,
    witnessed_at  timestamptz
);
CREATE INDEX audit_checkpoint_size_idx ON audit_checkpoint (tree_size);
CREATE INDEX audit_checkpoint_unwitnessed_idx ON audit_checkpoint (id) WHERE witnessed_at IS NULL;
