"""Sealing a batch's attributes into the vault (real PostgreSQL): new subjects in one
statement, known and forgotten subjects under their own keys, every item readable."""

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import pytest

from hub.audit import AuditEntry, audit_append
from hub.contracts.detection_v1 import DetectionEvent
from hub.kit.db import literal_column
from hub.retention.crypto import KeyRing
from hub.retention.vault import SHREDDED, forget_subject, read_attributes, seal_events
from hub.runtime import Services
from tests.hub.ingest.builders import event

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class _Counting:
    """A real connection that counts the statements sent through it."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.sent: list[str] = []

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        self.sent.append(query)
        return list(await self.conn.fetch(query, *args))

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        self.sent.append(query)
        return await self.conn.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        self.sent.append(query)
        return await self.conn.fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        self.sent.append(query)
        return str(await self.conn.execute(query, *args))


def _plates(*plates: str) -> list[DetectionEvent]:
    detection = {
        "label": "plate",
        "confidence": 0.9,
        "box": {"x": 0, "y": 0, "width": 1, "height": 1},
    }
    return [
        msgspec.convert(
            event(detections=[{**detection, "attributes": {"plate_text": p}}]), DetectionEvent
        )
        for p in plates
    ]


async def _seal(
    conn: asyncpg.Connection, keys: KeyRing, events: Sequence[DetectionEvent], first_pk: int
) -> tuple[int, list[str]]:
    rows = {e.event_id: (first_pk + n, AT) for n, e in enumerate(events)}
    counting = _Counting(conn)
    written = await seal_events(counting, keys, events=events, rows=rows)
    return written, counting.sent


async def _read(conn: asyncpg.Connection, keys: KeyRing, pk: int) -> object:
    return (await read_attributes(conn, keys, event_pk=pk, captured_at=AT))[0]


async def test_new_subjects_are_keyed_and_sealed_in_one_statement(services: Services) -> None:
    keys = services.retention.keys
    async with services.db.transaction() as conn:
        # Two sightings of one plate in the batch share the subject's one key.
        written, sent = await _seal(conn, keys, _plates("AB-1", "CD-2", "ab 1"), first_pk=1)
        assert written == 3
        assert len(sent) == 1
        assert [await _read(conn, keys, pk) for pk in (1, 2, 3)] == [
            {"plate_text": "AB-1"},
            {"plate_text": "CD-2"},
            {"plate_text": "ab 1"},
        ]
        subjects = await conn.fetchval("SELECT count(*) FROM pii_subject_key")
        clear = await conn.fetchval(
            "SELECT count(*) FROM pii_attribute WHERE position('AB-1'::bytea IN ciphertext) > 0"
        )
    assert (subjects, clear) == (2, 0)


async def test_known_and_forgotten_subjects_keep_their_own_keys(services: Services) -> None:
    keys = services.retention.keys
    async with services.db.transaction() as conn:
        await _seal(conn, keys, _plates("KNOWN-1", "GONE-2"), first_pk=1)
        await forget_subject(conn, subject=keys.plate_subject("GONE-2"))
        written, sent = await _seal(conn, keys, _plates("KNOWN-1", "GONE-2", "NEW-3"), first_pk=10)
        assert written == 3
        # The combined statement, the known keys, the forgotten key's renewal, their items.
        assert len(sent) == 4
        assert await _read(conn, keys, 2) == SHREDDED  # forgetting still holds for the old row
        assert [await _read(conn, keys, pk) for pk in (1, 10, 11, 12)] == [
            {"plate_text": "KNOWN-1"},
            {"plate_text": "KNOWN-1"},
            {"plate_text": "GONE-2"},
            {"plate_text": "NEW-3"},
        ]
        generations = dict(
            await conn.fetch(
                """SELECT k.subject, array_agg(a.generation ORDER BY a.event_pk)
                   FROM pii_attribute a JOIN pii_subject_key k USING (subject)
                   GROUP BY k.subject"""
            )
        )
    assert generations[keys.plate_subject("KNOWN-1")] == [1, 1]
    assert generations[keys.plate_subject("GONE-2")] == [1, 2]
    assert generations[keys.plate_subject("NEW-3")] == [1]


async def test_a_batch_without_attributes_sends_nothing(services: Services) -> None:
    bare = msgspec.convert(event(detections=[event()["detections"][0]]), DetectionEvent)
    async with services.db.transaction() as conn:
        written, sent = await _seal(conn, services.retention.keys, [bare], first_pk=1)
    assert (written, sent) == (0, [])


async def test_a_subject_a_concurrent_batch_creates_first_is_sealed_under_its_key(
    services: Services,
) -> None:
    keys = services.retention.keys
    subject = keys.plate_subject("RACE-1")
    _, wrapped = keys.new_data_key(subject)
    async with services.db.pool.acquire() as first, services.db.pool.acquire() as second:
        opened = first.transaction()
        await opened.start()
        await first.execute(
            """INSERT INTO pii_subject_key (subject, master_key_id, wrapped_key)
               VALUES ($1, $2, $3)""",
            subject,
            keys.current_id,
            wrapped,
        )
        async with second.transaction():
            sealing = asyncio.create_task(_seal(second, keys, _plates("RACE-1"), first_pk=1))
            await asyncio.sleep(0.3)
            assert not sealing.done()  # DO NOTHING waits for the first batch's commit
            await opened.commit()
            written, sent = await sealing
        # Not created here: its key is read (the first batch's), then the item stored.
        assert (written, len(sent)) == (1, 3)
        assert await _read(second, keys, 1) == {"plate_text": "RACE-1"}
        stored = await second.fetchval(
            "SELECT wrapped_key FROM pii_subject_key WHERE subject = $1", subject
        )
    assert bytes(stored) == wrapped  # the first batch's key, not replaced


async def test_two_batches_renewing_one_forgotten_subject_share_one_key(
    services: Services,
) -> None:
    keys = services.retention.keys
    async with services.db.transaction() as conn:
        await _seal(conn, keys, _plates("TWICE-1"), first_pk=1)
        await forget_subject(conn, subject=keys.plate_subject("TWICE-1"))
    async with services.db.pool.acquire() as first, services.db.pool.acquire() as second:
        opened = first.transaction()
        await opened.start()
        await _seal(first, keys, _plates("TWICE-1"), first_pk=10)  # renews, not committed
        async with second.transaction():
            sealing = asyncio.create_task(_seal(second, keys, _plates("TWICE-1"), first_pk=20))
            await asyncio.sleep(0.3)
            assert not sealing.done()  # its renewal waits for the first batch's
            await opened.commit()
            await sealing
        # Both new sightings open: the second batch used the key the first one installed.
        assert await _read(second, keys, 10) == {"plate_text": "TWICE-1"}
        assert await _read(second, keys, 20) == {"plate_text": "TWICE-1"}
        assert await _read(second, keys, 1) == SHREDDED


async def test_a_neighbours_entry_is_written_by_the_sealing_statement(services: Services) -> None:
    """Ingest hands its audit entry to the vault's statement (ADR 0030): one statement seals
    the items and appends the entry; without items the entry is written alone."""
    keys = services.retention.keys
    entry = AuditEntry(actor="edge_node:x", action="ingest.batch", target="t", detail={"n": 1})
    bare = msgspec.convert(event(detections=[event()["detections"][0]]), DetectionEvent)
    async with services.db.transaction() as conn:
        counting = _Counting(conn)
        plates = _plates("AL-1", "AL-2")
        rows = {e.event_id: (1 + n, AT) for n, e in enumerate(plates)}
        also = audit_append(entry, clock=lambda: AT)
        written = await seal_events(counting, keys, events=plates, rows=rows, also=also)
        alone = _Counting(conn)
        nothing = await seal_events(alone, keys, events=[bare], rows={}, also=also)
        audited = await conn.fetch(
            "SELECT at, actor, action, detail::text FROM audit_log ORDER BY seq"
        )
        items = await conn.fetchval("SELECT count(*) FROM pii_attribute")
    assert (written, len(counting.sent), items) == (2, 1, 2)
    assert (nothing, len(alone.sent)) == (0, 1)
    assert [tuple(r) for r in audited] == [(AT, "edge_node:x", "ingest.batch", '{"n": 1}')] * 2


async def test_the_entry_rolls_back_with_the_sealing_statement(services: Services) -> None:
    """The entry is part of the vault's statement: when that statement fails (here its items
    carry a detection index the table's check refuses), neither is written."""
    keys = services.retention.keys
    entry = AuditEntry(actor="edge_node:x", action="ingest.batch", target="t")
    plates = _plates("RB-1")
    conn = await asyncpg.connect(services.settings.database_url)
    try:
        rows = {plates[0].event_id: (1, AT)}
        with pytest.raises(asyncpg.CheckViolationError):
            async with conn.transaction():
                await seal_events(
                    _NegativeDetection(conn), keys, events=plates, rows=rows,
                    also=audit_append(entry),
                )  # fmt: skip
        audited = await conn.fetchval("SELECT count(*) FROM audit_log WHERE target = 't'")
    finally:
        await conn.close()
    assert audited == 0


class _NegativeDetection(_Counting):
    """Sends the sealing statement with every detection index made -1 ($8, an array literal)."""

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        changed = list(args)
        changed[7] = literal_column([-1] * (changed[7].count(",") + 1))
        return await super().fetch(query, *changed)
