-- Feeds: a commit-ordered position for every accepted event, and agencies' acknowledgements.
--
-- Why not page on detection_event.id: ids come from a sequence when a row is inserted, so a
-- transaction holding id 10 can commit after one holding id 11 is already visible; a reader
-- that moved its cursor past 11 would never see 10. Instead, a trigger queues each accepted
-- event in feed_pending inside the ingest transaction (so nothing is lost if the process dies
-- right after commit), and the sequencer moves committed pending rows into feed_entry under a
-- transaction-scoped advisory lock. Sequencer transactions therefore commit one after another,
-- so a reader that sees position N also sees every position below N: `seq > cursor` pages
-- have no gaps and no duplicates, whatever order ingest transactions commit in.
SET LOCAL lock_timeout = '5s';

CREATE TABLE feed_pending (
    event_pk     bigint NOT NULL,
    captured_at  timestamptz NOT NULL,
    queued_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (event_pk, captured_at)
);

CREATE SEQUENCE feed_entry_seq AS bigint;

-- Filter columns are copied from the event (they never change), so a page is one ordered
-- walk of this table's primary key plus one primary-key probe per row into the event.
CREATE TABLE feed_entry (
    seq           bigint PRIMARY KEY,
    event_pk      bigint NOT NULL,
    captured_at   timestamptz NOT NULL,
    camera_id     text NOT NULL,
    classes       text[] NOT NULL,
    media_sha256  text[] NOT NULL DEFAULT '{}',
    sequenced_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT feed_entry_event_key UNIQUE (event_pk, captured_at)
);
ALTER SEQUENCE feed_entry_seq OWNED BY feed_entry.seq;
CREATE INDEX feed_entry_media_idx ON feed_entry USING gin (media_sha256);
CREATE INDEX feed_entry_camera_idx ON feed_entry (camera_id, seq);

-- What an agency said it has processed (SOAP `Acknowledge`): one row per (agency, position).
CREATE TABLE feed_ack (
    agency           text NOT NULL,
    seq              bigint NOT NULL,
    subject          text NOT NULL,
    acknowledged_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agency, seq)
);

CREATE FUNCTION feed_queue_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO feed_pending (event_pk, captured_at) VALUES (NEW.id, NEW.captured_at)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

-- Row triggers on the partitioned parent are cloned onto every partition, present and future.
-- Quarantined events enter the feed only if a reviewer later accepts them.
CREATE TRIGGER detection_event_feed_insert AFTER INSERT ON detection_event
    FOR EACH ROW WHEN (NEW.disposition = 'accepted') EXECUTE FUNCTION feed_queue_event();
CREATE TRIGGER detection_event_feed_accept AFTER UPDATE OF disposition ON detection_event
    FOR EACH ROW WHEN (OLD.disposition <> 'accepted' AND NEW.disposition = 'accepted')
    EXECUTE FUNCTION feed_queue_event();

-- Events stored before this migration join the feed, oldest first, at the next sequencing.
INSERT INTO feed_pending (event_pk, captured_at)
SELECT id, captured_at FROM detection_event WHERE disposition = 'accepted' ORDER BY id;
