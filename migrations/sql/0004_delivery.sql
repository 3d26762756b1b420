-- Delivery: agency subscriptions and registry attributes, the attempt log, and the ledger
-- columns the worker needs. Expand step only: new columns all have constant defaults (no
-- table rewrite on PostgreSQL 11+), constraints are swapped on tables that are still small
-- at this point of the project's life. lock_timeout keeps a busy table from stalling deploys.
SET LOCAL lock_timeout = '5s';

-- What an agency is offered (subscription) and who it is to release policy (registry view).
-- Empty arrays mean "every class" / "every camera".
ALTER TABLE agency
    ADD COLUMN purpose          text NOT NULL DEFAULT 'investigation',
    ADD COLUMN sub_classes      text[] NOT NULL DEFAULT '{}',
    ADD COLUMN sub_cameras      text[] NOT NULL DEFAULT '{}',
    ADD COLUMN sub_min_confidence real NOT NULL DEFAULT 0 CHECK (sub_min_confidence BETWEEN 0 AND 1),
    ADD COLUMN jurisdictions    text[] NOT NULL DEFAULT '{}',
    ADD COLUMN clearance        integer NOT NULL DEFAULT 0 CHECK (clearance BETWEEN 0 AND 10),
    ADD COLUMN max_concurrency  integer NOT NULL DEFAULT 8 CHECK (max_concurrency BETWEEN 1 AND 1000),
    ADD COLUMN rate_per_second  real NOT NULL DEFAULT 200 CHECK (rate_per_second > 0),
    ADD COLUMN paused_reason    text CHECK (length(paused_reason) <= 500),
    ADD COLUMN paused_at        timestamptz;

-- Ledger: `withheld` is an end state for a release policy denial (nothing was sent);
-- `attempt_limit` grows on replay so a replayed dead letter gets a fresh budget while
-- `attempts` keeps counting; `decision_id` and `receipt` say what was sent and what came back.
ALTER TABLE delivery DROP CONSTRAINT delivery_status_check;
ALTER TABLE delivery
    ADD CONSTRAINT delivery_status_check CHECK (status IN
        ('pending', 'in_flight', 'retrying', 'delivered', 'dead', 'withheld', 'cancelled')),
    ADD COLUMN attempt_limit    integer NOT NULL DEFAULT 8 CHECK (attempt_limit >= 1),
    ADD COLUMN decision_id      text,
    ADD COLUMN receipt          jsonb,
    ADD COLUMN last_status_code integer,
    ADD COLUMN dead_at          timestamptz;

-- The due index now also covers leases of in-flight rows (a worker died holding them).
DROP INDEX delivery_due_idx;
CREATE INDEX delivery_due_idx ON delivery (next_attempt_at)
    WHERE status IN ('pending', 'retrying', 'in_flight');
CREATE INDEX delivery_dead_idx ON delivery (dead_at) WHERE status = 'dead';

-- One row per attempt: what happened, how long it took, what the agency said (bounded).
CREATE TABLE delivery_attempt (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id  uuid NOT NULL REFERENCES delivery (id) ON DELETE CASCADE,
    attempt      integer NOT NULL CHECK (attempt >= 1),
    started_at   timestamptz NOT NULL,
    duration_ms  integer NOT NULL CHECK (duration_ms >= 0),
    outcome      text NOT NULL CHECK (outcome IN ('delivered', 'retry', 'dead', 'withheld')),
    status_code  integer,
    error        text CHECK (length(error) <= 1000),
    decision_id  text
);
CREATE INDEX delivery_attempt_delivery_idx ON delivery_attempt (delivery_id, attempt);
CREATE INDEX delivery_attempt_started_brin ON delivery_attempt USING brin (started_at);
