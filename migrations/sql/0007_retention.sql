-- Retention, legal holds and PII at rest. Expand step only: new tables, nothing in use is
-- touched (lock_timeout keeps a busy database from stalling the deploy anyway).
SET LOCAL lock_timeout = '5s';

-- Legal holds. A hold covers events by id, by camera and capture-time range, or by track
-- (optionally on one camera). Held data is never swept. Release is four-eyes: one officer
-- asks (`release_requested_by`), a different one confirms (`released_by`).
CREATE TABLE legal_hold (
    id                    uuid PRIMARY KEY,
    reason                text NOT NULL CHECK (length(reason) BETWEEN 1 AND 2000),
    incident_id           text CHECK (length(incident_id) <= 200),
    event_ids             uuid[] NOT NULL DEFAULT '{}',
    camera_id             text,
    from_at               timestamptz,
    to_at                 timestamptz,
    track_id              text,
    status                text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'released')),
    created_by            text NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    release_requested_by  text,
    release_requested_at  timestamptz,
    released_by           text,
    released_at           timestamptz,
    -- Exactly one way of saying what is held.
    CHECK ((cardinality(event_ids) > 0)::int
           + (camera_id IS NOT NULL AND from_at IS NOT NULL AND to_at IS NOT NULL AND track_id IS NULL)::int
           + (track_id IS NOT NULL)::int = 1),
    CHECK (from_at IS NULL OR to_at IS NULL OR from_at < to_at),
    CHECK ((status = 'released') = (released_by IS NOT NULL AND released_at IS NOT NULL)),
    CHECK (released_by IS NULL OR released_by <> release_requested_by)
);
CREATE INDEX legal_hold_active_idx ON legal_hold (created_at) WHERE status = 'active';

-- Per-subject data keys (envelope encryption). `subject` is a keyed hash (HMAC-SHA256 under
-- the hub's subject key) of what identifies a person, e.g. a normalised plate number; the
-- data key is stored wrapped by a master key (`master_key_id`). Forgetting a subject sets
-- `wrapped_key` to NULL: every ciphertext under that generation becomes unreadable.
CREATE TABLE pii_subject_key (
    subject        text PRIMARY KEY CHECK (subject ~ '^[0-9a-f]{64}$'),
    generation     integer NOT NULL DEFAULT 1 CHECK (generation >= 1),
    master_key_id  text,
    wrapped_key    bytea,
    created_at     timestamptz NOT NULL DEFAULT now(),
    shredded_at    timestamptz,
    CHECK ((wrapped_key IS NULL) = (master_key_id IS NULL)),
    CHECK (wrapped_key IS NOT NULL OR shredded_at IS NOT NULL)
);

-- The encrypted PII attributes of one detection of one event (the vault). Keyed by event,
-- no foreign key (event partitions are dropped whole); the sweep deletes rows with events.
CREATE TABLE pii_attribute (
    event_pk     bigint NOT NULL,
    captured_at  timestamptz NOT NULL,
    detection    integer NOT NULL CHECK (detection >= 0),
    subject      text NOT NULL REFERENCES pii_subject_key (subject),
    generation   integer NOT NULL,
    nonce        bytea NOT NULL CHECK (length(nonce) = 12),
    ciphertext   bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_pk, captured_at, detection)
);
CREATE INDEX pii_attribute_subject_idx ON pii_attribute (subject);
CREATE INDEX pii_attribute_captured_idx ON pii_attribute (captured_at);

-- One row per sweep: progress is committed with every batch, so a sweep killed mid-way
-- leaves a 'running' row the next sweep closes (and audits) before it resumes the work.
CREATE TABLE retention_run (
    id           uuid PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    status       text NOT NULL DEFAULT 'running'
                 CHECK (status IN ('running', 'finished', 'interrupted')),
    actor        text NOT NULL,
    counts       jsonb NOT NULL DEFAULT '{}'::jsonb,
    decision_ids text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX retention_run_running_idx ON retention_run (started_at) WHERE status = 'running';

-- The sweep asks "is this snapshot still referenced by an event that needs it?" per media
-- object; without this index that is a scan of every event partition.
CREATE INDEX detection_event_media_idx ON detection_event USING gin (media_sha256);
