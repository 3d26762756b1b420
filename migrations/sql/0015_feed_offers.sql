-- Feed offers: what each reader may be offered, decided once per event, not once per page.
--
-- Before this, every reader paged the one global feed and withheld what it could not see,
-- so an agency that sees a tenth of the events still read (and released, and logged) all of
-- them. Now a reader pages its *audience*'s offers: an audience is everything a release
-- verdict and the agency's subscription depend on (recipient as the credential narrows it,
-- purpose, data class, subscription); its offers are the feed positions that pass the
-- subscription and whose coarse release verdict (camera, jurisdiction, set of labels: the
-- release cache key, policies/README.md "Caching") allows. Offers are filled lazily by the
-- first reader that needs positions the audience has not covered yet, one contiguous range
-- (lo, hi] per audience, under the audience row's lock; a new bundle revision empties the
-- audience and it starts again from the asking reader's cursor (docs/adr/0015-feed-offers.md).
--
-- Why a cursor may move to `hi` past positions with no offer: hi never exceeds the highest
-- position the sequencer had handed out when the range was filled, and sequencer commits are
-- serial (0006_feeds.sql), so every position <= hi was visible and judged.
SET LOCAL lock_timeout = '5s';

-- The coarse release inputs and the subscription's confidence, copied from the event once by
-- the sequencer, so filling offers never touches detection_event.
ALTER TABLE feed_entry
    ADD COLUMN jurisdiction   text,
    ADD COLUMN max_confidence real NOT NULL DEFAULT 1;

UPDATE feed_entry f
   SET jurisdiction = e.payload ->> 'jurisdiction', max_confidence = e.max_confidence
  FROM detection_event e
 WHERE e.id = f.event_pk AND e.captured_at = f.captured_at;

CREATE TABLE feed_audience (
    id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key        text NOT NULL UNIQUE CHECK (length(key) BETWEEN 1 AND 64),
    agency     text NOT NULL,
    revision   text NOT NULL DEFAULT '',
    lo         bigint NOT NULL DEFAULT 0,
    hi         bigint NOT NULL DEFAULT 0,
    used_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (lo <= hi)
);

-- One row per (audience, position) offered. Retention deleting a feed position takes its
-- offers with it (cascade, through the seq index).
CREATE TABLE feed_offer (
    audience_id  integer NOT NULL REFERENCES feed_audience (id) ON DELETE CASCADE,
    seq          bigint NOT NULL REFERENCES feed_entry (seq) ON DELETE CASCADE,
    PRIMARY KEY (audience_id, seq)
);
CREATE INDEX feed_offer_seq_idx ON feed_offer (seq);

-- "Why was event X released to agency Y": a page's release decision is shared by the items
-- one evaluation covered and names them in input.record.event_ids (hub/feeds/release.py).
CREATE INDEX policy_decisions_feed_events_idx ON policy_decisions
    USING gin ((input -> 'record' -> 'event_ids'))
    WHERE entrypoint = 'hub/release/decision' AND (input -> 'record') ? 'event_ids';

-- Feed queueing per statement, not per row: the row trigger of 0006 ran a PL/pgSQL call and
-- a one-row INSERT for each of a batch's 100 events inside the ingest transaction; one
-- INSERT ... SELECT over the statement's transition table queues them all. Inserts reach
-- detection_event through its parent (hub/ingest/repository.py), which fires this trigger
-- whatever partition the rows land in. The UPDATE trigger (a reviewer accepting a quarantined
-- event, one row at a time) stays as it was.
CREATE FUNCTION feed_queue_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO feed_pending (event_pk, captured_at)
    SELECT id, captured_at FROM inserted_events WHERE disposition = 'accepted'
    ORDER BY id
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

DROP TRIGGER detection_event_feed_insert ON detection_event;
CREATE TRIGGER detection_event_feed_insert AFTER INSERT ON detection_event
    REFERENCING NEW TABLE AS inserted_events
    FOR EACH STATEMENT EXECUTE FUNCTION feed_queue_events();
