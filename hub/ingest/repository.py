"""SQL for detection events and media objects; the only module that queries them."""

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg
import msgspec

from hub.ingest.ports import Planned, RoutingSql
from hub.ingest.rules import PreparedEvent
from hub.kit.db import bytes_column, float4_values, joined_column, literal_column
from hub.media import EventRegions
from hub.retention import strip_payload

# Text columns arrive as one string each, events separated by ";" and list items by ",":
# asyncpg checks every element of an array parameter against up to three ABCs in Python
# (~0.1 µs each, ~1,300 checks a batch for these columns alone), a string not at all. Neither
# a camera id, a label nor a hex digest can hold ";" or "," (the contract's patterns). An
# event without media is an empty item, and one empty item is no item at all for
# string_to_array: hence the coalesce. The content hashes, 32 bytes each, come as one bytea
# cut by position for the same reason, and so do the payloads (`bytes_column`); the
# confidences come as an array literal (`literal_column`). The event ids and capture times
# stay arrays: as text, PostgreSQL would parse them at more CPU than the driver's checks cost
# (its CPU is as busy as ours), and with the ids' array hidden in an expression the planner
# no longer sees its length and gives `known` a bitmap scan (0.3-0.6 ms more; ADR 0035).
#
# Events this node already stored (at any capture time) are found by one index scan per
# partition for the whole batch (`known`), not a probe per event: a correlated NOT EXISTS
# re-ran the scan of every partition once per event, and that executor work grew with the
# partitions (bench/ingest_insert.py). The scan needs the partitions' statistics, as
# `stored_hashes` does (`PartitionStatistics`): without them the planner may scan a node's
# rows by node_id alone.
#
# The regions the new events report on their images are recorded by the same statement (a
# CTE whose SQL hub.media owns, parameters $13..), for the events actually inserted; so are
# their deliveries, when a planner routes the batch (a CTE whose SQL hub.delivery owns,
# parameters after the regions'). One statement and one round trip per batch instead of
# three, and routing reads the rows inserted instead of their columns sent back as
# parameters (ADR 0030).
_INSERT_EVENTS = """
WITH known AS MATERIALIZED (
    SELECT coalesce(array_agg(d.event_id), '{{}}') AS ids FROM detection_event d
    WHERE d.node_id = $1 AND d.event_id = ANY($2::uuid[])
), inserted AS (
INSERT INTO detection_event
    (node_id, event_id, captured_at, camera_id, classes, max_confidence, media_sha256,
     disposition, content_sha256, payload)
SELECT $1, e.event_id, e.captured_at, e.camera_id, string_to_array(e.classes, ','),
       e.max_confidence, coalesce(string_to_array(e.media, ','), '{{}}'),
       CASE WHEN e.event_id = ANY($12::uuid[]) THEN 'quarantined' ELSE 'accepted' END,
       substring($8::bytea FROM e.n::int * 32 - 31 FOR 32),
       convert_from(substring($9::bytea FROM e.payload_at FOR e.payload_length), 'UTF8')::jsonb
FROM unnest($2::uuid[], $3::timestamptz[], string_to_array($4::text, ';'),
            string_to_array($5::text, ';'), $6::text::real[], string_to_array($7::text, ';'),
            $10::text::int[], $11::text::int[])
     WITH ORDINALITY AS e(event_id, captured_at, camera_id, classes, max_confidence, media,
                          payload_at, payload_length, n),
     known
WHERE e.event_id <> ALL (known.ids){on_conflict}
RETURNING event_id, id, captured_at, camera_id, classes, max_confidence, disposition
), regions AS (
    {regions}
){routing}
"""
# The answer: the inserted rows, then one row per agency that got deliveries, with how many
# (`event_id` NULL): an agency, not a row per delivery, is what is woken. Without routing the
# `planned` CTE plans nothing. Capture times are not sent back: the caller holds them, and
# decoding 100 timestamps a batch was ~1.5 % of an API worker's CPU.
_ANSWER = """, planned AS (
    {planned}
)
SELECT event_id, id, NULL::uuid AS agency_id, 0 AS rows FROM inserted
UNION ALL
SELECT NULL, NULL, agency_id, count(*)::int FROM planned GROUP BY agency_id"""
_NOT_ROUTED = "SELECT NULL::uuid AS agency_id WHERE false"
_FIRST_REGION_PARAM = 13
# Only for a batch that lost a race (`LostRace`): a plain INSERT is cheaper. Speculative
# insertion probes the unique index once more per row and writes a second WAL record for it,
# ~5 % of PostgreSQL's CPU per batch (perf, bench/ingest_profile.py), while the `known`
# look-up already leaves out every event stored before this statement began.
_SKIP_CONFLICTS = "\nON CONFLICT (node_id, event_id, captured_at) DO NOTHING"


@functools.lru_cache(maxsize=8)
def _insert_events_sql(planned: str, *, race_tolerant: bool) -> str:
    """The events INSERT, with the routing CTE body `planned`."""
    regions = EventRegions.sql(first=_FIRST_REGION_PARAM, inserted="inserted")
    return _INSERT_EVENTS.format(
        on_conflict=_SKIP_CONFLICTS if race_tolerant else "",
        regions=regions,
        routing=_ANSWER.format(planned=planned),
    )


class LostRaceError(Exception):
    """A concurrent request stored one of the batch's events first (after this statement's
    `known` look-up, before it inserted): the transaction is aborted, and the caller tries
    again with `race_tolerant`, which skips such events instead."""


# Where a stored event's row is (its key in every table that refers to it).
StoredRow = tuple[int, datetime]


@dataclass(frozen=True, slots=True)
class Inserted:
    """What the events INSERT did: each inserted event's row, and the deliveries it planned
    per agency (empty without routing)."""

    rows: dict[UUID, StoredRow]
    planned: Planned


async def stored_hashes(
    conn: asyncpg.Connection, *, node_id: UUID, event_ids: Sequence[UUID]
) -> dict[UUID, bytes]:
    """Content hashes of the given events this node already stored (any capture time)."""
    # Fast only while the partition has statistics (`PartitionStatistics`): without them the
    # planner reads every event of the node and filters on the ids.
    rows = await conn.fetch(
        """SELECT event_id, content_sha256 FROM detection_event
           WHERE node_id = $1 AND event_id = ANY($2::uuid[])""",
        node_id,
        event_ids,
    )
    return {row["event_id"]: bytes(row["content_sha256"]) for row in rows}


async def insert_events(
    conn: asyncpg.Connection,
    *,
    node_id: UUID,
    events: Sequence[PreparedEvent],
    quarantined: set[UUID],
    regions: EventRegions,
    routing: RoutingSql | None = None,
    strip_pii: bool = False,
    race_tolerant: bool = False,
) -> Inserted:
    """Insert in one statement what this node has not stored yet; returns the events
    actually inserted, each with its row's (id, captured_at), and the deliveries planned.

    An event whose id the node already stored (at any capture time, so not only what the
    unique key catches) is left out: the caller asks `stored_hashes` for those alone, so a
    batch of new events costs one round trip instead of a look-up and an insert. One that a
    concurrent request stores first raises `LostRaceError` (the transaction is then aborted),
    unless `race_tolerant`, when it is left out too. The existence check looks up the batch's
    ids in the (node_id, event_id) index of each partition once for the whole batch.

    `regions` are the events' regions on their images (`hub.media.event_regions`); those of
    the events inserted are recorded with them. `routing` (the delivery planner's, ADR 0030)
    plans the deliveries of those inserted as accepted, in the same statement.

    With `strip_pii` the payload is stored without detection attributes (the caller seals them
    in the PII vault in the same transaction); `content_sha256` stays the hash of the event as
    sent, so a re-send is still recognised."""
    if not events:
        return Inserted(rows={}, planned={})
    sql = _insert_events_sql(
        _NOT_ROUTED
        if routing is None
        else routing.sql(first=_routing_first(regions), inserted="inserted"),
        race_tolerant=race_tolerant,
    )
    params = _event_params(node_id, events, quarantined=quarantined, strip_pii=strip_pii)
    try:
        answered = await conn.fetch(
            sql, *params, *regions.columns, *(() if routing is None else routing.params)
        )
    except asyncpg.UniqueViolationError as error:
        raise LostRaceError(error.constraint_name or "") from error
    captured = {item.event.event_id: item.event.captured_at for item in events}
    rows: dict[UUID, StoredRow] = {}
    planned: dict[UUID, int] = {}
    for event_id, pk, agency_id, count in answered:
        if event_id is None:
            planned[agency_id] = count
        else:
            rows[event_id] = (pk, captured[event_id])
    return Inserted(rows=rows, planned=planned)


def _event_params(
    node_id: UUID, events: Sequence[PreparedEvent], *, quarantined: set[UUID], strip_pii: bool
) -> tuple[object, ...]:
    """The events INSERT's parameters $1..$12: the batch's columns."""
    return (
        node_id,
        [item.event.event_id for item in events],
        [item.event.captured_at for item in events],
        joined_column([item.event.camera_id for item in events]),
        joined_column([",".join(item.classes) for item in events]),
        # max_confidence is a real: rounded as the binary encoding did (`float4_values`).
        literal_column(float4_values([item.best for item in events])),
        joined_column([",".join([m.sha256 for m in item.event.media]) for item in events]),
        b"".join([item.content_sha256 for item in events]),
        # As bytes: a str would be decoded here only for the driver to encode it again.
        *bytes_column(
            [stored_payload(item, node_id=node_id, strip_pii=strip_pii) for item in events]
        ),
        # Quarantine as a (mostly empty) list of ids, not a text per event: see above.
        list(quarantined),
    )


def _routing_first(regions: EventRegions) -> int:
    """The number of the routing CTE's first parameter: the one after the regions'."""
    return _FIRST_REGION_PARAM + len(regions.columns)


def stored_payload(item: PreparedEvent, *, node_id: UUID, strip_pii: bool) -> bytes:
    """The record as stored: the event as sent (attributes sealed away with `strip_pii`) plus
    its camera's `jurisdiction` from the registry, which release policy reads. The event
    schema has no such field, so the registry's value is the only one a record can carry."""
    payload = (
        strip_payload(item.event, item.payload, node_id=node_id) if strip_pii else item.payload
    )
    if item.jurisdiction is None:
        return payload
    # Spliced rather than re-encoded (the column is jsonb, so key order does not matter).
    return _jurisdiction_key(item.jurisdiction) + payload[1:]


@functools.lru_cache(maxsize=256)
def _jurisdiction_key(jurisdiction: str) -> bytes:
    """The payload's opening with its jurisdiction key (a registry holds a few of them)."""
    return b'{"jurisdiction":' + msgspec.json.encode(jurisdiction) + b","


async def insert_media(
    conn: asyncpg.Connection,
    *,
    sha256: str,
    size: int,
    content_type: str,
    storage_path: str,
    node_id: UUID,
) -> bool:
    """Record a stored blob; False when it was already recorded."""
    status: str = await conn.execute(
        """INSERT INTO media_object (sha256, size_bytes, content_type, storage_path, node_id)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sha256) DO NOTHING""",
        sha256,
        size,
        content_type,
        storage_path,
        node_id,
    )
    return status.endswith(" 1")
