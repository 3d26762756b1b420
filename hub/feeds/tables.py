"""Piccolo tables of feeds (schema, trigger and sequence in migrations/sql/0006_feeds.sql).

Reads and writes are SQL in repository.py; these declarations keep the schema check honest.
"""

from piccolo.columns import Array, BigInt, Integer, Real, Text, Timestamptz
from piccolo.table import Table


class FeedPending(Table, tablename="feed_pending"):
    """An accepted event waiting for its feed position (queued by trigger at ingest)."""

    event_pk = BigInt(primary_key=True)
    captured_at = Timestamptz()
    queued_at = Timestamptz()
    # What the sequencer copies into feed_entry, carried by ingest's trigger (migration 0031;
    # NULL in rows queued before it, which the sequencer joins back to their event).
    camera_id = Text(null=True)
    classes = Array(base_column=Text(), null=True)
    media_sha256 = Array(base_column=Text(), null=True)
    jurisdiction = Text(null=True)
    max_confidence = Real(null=True)


class FeedEntry(Table, tablename="feed_entry"):
    """An event's position in the feed; positions are assigned in commit order."""

    seq = BigInt(primary_key=True)
    event_pk = BigInt()
    captured_at = Timestamptz()
    camera_id = Text()
    classes = Array(base_column=Text())
    media_sha256 = Array(base_column=Text())
    sequenced_at = Timestamptz()
    jurisdiction = Text(null=True)
    max_confidence = Real()


class FeedAck(Table, tablename="feed_ack"):
    """A feed position an agency acknowledged having processed."""

    agency = Text(primary_key=True)
    seq = BigInt()
    subject = Text()
    acknowledged_at = Timestamptz()


class FeedAudience(Table, tablename="feed_audience"):
    """A reader audience (recipient, purpose, subscription) and the range its offers cover."""

    id = Integer(primary_key=True)
    key = Text(unique=True)
    agency = Text()
    revision = Text()
    lo = BigInt()
    hi = BigInt()
    used_at = Timestamptz()


class FeedOffer(Table, tablename="feed_offer"):
    """A feed position an audience may be offered (its coarse release verdict allows)."""

    audience_id = Integer(primary_key=True)
    seq = BigInt()
