"""Sealing a batch's attributes into the vault (real PostgreSQL): new subjects in one
statement, known and forgotten subjects under their own keys, every item readable."""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from hub.contracts.detection_v1 import DetectionEvent
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
