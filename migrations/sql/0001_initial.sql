-- Initial schema. Conventions: see docs/migrations.md (expand/contract, no long locks).
-- Partitioned and constraint-heavy tables are raw SQL because Piccolo has no verbs for them.

CREATE TABLE edge_node (
    id              uuid PRIMARY KEY,
    name            text NOT NULL UNIQUE,
    public_key      bytea NOT NULL CHECK (length(public_key) = 32),   -- raw Ed25519
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    revoked_reason  text,
    CHECK ((status = 'revoked') = (revoked_at IS NOT NULL))
);

CREATE TABLE agency (
    id            uuid PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    adapter_kind  text NOT NULL,
    endpoint      text NOT NULL,
    config        jsonb NOT NULL DEFAULT '{}'::jsonb,
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'disabled')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Detection events, partitioned by month of capture time. Identity columns are not
-- supported on partitioned tables before PostgreSQL 17, hence the explicit sequence.
CREATE SEQUENCE detection_event_id_seq AS bigint;

CREATE TABLE detection_event (
    id              bigint NOT NULL DEFAULT nextval('detection_event_id_seq'),
    node_id         uuid NOT NULL,
    event_id        uuid NOT NULL,
    captured_at     timestamptz NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    camera_id       text NOT NULL,
    classes         text[] NOT NULL,
    max_confidence  real NOT NULL,
    media_sha256    text[] NOT NULL DEFAULT '{}',
    disposition     text NOT NULL DEFAULT 'accepted'
                    CHECK (disposition IN ('accepted', 'quarantined')),
    content_sha256  bytea NOT NULL,
    payload         jsonb NOT NULL,
    PRIMARY KEY (id, captured_at),
    -- Re-sends are no-ops; the prefix (node_id, event_id) also serves the duplicate look-up.
    CONSTRAINT detection_event_node_event_key UNIQUE (node_id, event_id, captured_at)
) PARTITION BY RANGE (captured_at);

ALTER SEQUENCE detection_event_id_seq OWNED BY detection_event.id;

-- Catches capture times outside every monthly partition; the partition job moves its rows
-- into proper partitions and the hub reports a non-empty default as a warning.
CREATE TABLE detection_event_default PARTITION OF detection_event DEFAULT;

CREATE INDEX detection_event_captured_idx ON detection_event (captured_at, id);
CREATE INDEX detection_event_camera_idx ON detection_event (camera_id, captured_at);
CREATE INDEX detection_event_classes_idx ON detection_event USING gin (classes);

CREATE TABLE media_object (
    sha256        text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes    bigint NOT NULL CHECK (size_bytes >= 0),
    content_type  text NOT NULL,
    storage_path  text NOT NULL,
    node_id       uuid REFERENCES edge_node (id),
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- The delivery ledger (outbox): one row per (event, agency). No foreign key to
-- detection_event, so whole event partitions can be dropped by the retention sweep.
CREATE TABLE delivery (
    id                 uuid PRIMARY KEY,
    event_pk           bigint NOT NULL,
    event_captured_at  timestamptz NOT NULL,
    agency_id          uuid NOT NULL REFERENCES agency (id),
    status             text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'in_flight', 'retrying', 'delivered', 'dead', 'cancelled')),
    attempts           integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at    timestamptz NOT NULL DEFAULT now(),
    last_error         text CHECK (length(last_error) <= 2000),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    delivered_at       timestamptz,
    CONSTRAINT delivery_event_agency_key UNIQUE (event_pk, event_captured_at, agency_id)
);
CREATE INDEX delivery_due_idx ON delivery (next_attempt_at) WHERE status IN ('pending', 'retrying');
CREATE INDEX delivery_agency_status_idx ON delivery (agency_id, status);

-- Hash-chained audit log: `seq` is gap-free (assigned under an advisory lock) and each row
-- stores the hash of the previous one, so an edited or deleted row breaks the chain.
CREATE TABLE audit_log (
    seq          bigint PRIMARY KEY CHECK (seq >= 1),
    at           timestamptz NOT NULL,
    actor        text NOT NULL,
    action       text NOT NULL,
    target       text NOT NULL,
    detail       jsonb NOT NULL,
    decision_id  text,
    trace_id     text,
    prev_hash    bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash         bytea NOT NULL CHECK (length(hash) = 32)
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_actor_idx ON audit_log (actor, at);
