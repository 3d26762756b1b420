"""Feed positions against real PostgreSQL: commit order, concurrent writers, audit."""

import asyncio
import hashlib
import random
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import pytest

from hub.feeds.pages import read_page
from hub.feeds.schemas import FeedFilters
from hub.feeds.service import Reader, resolve_reader, sequence_and_announce
from hub.identity.schemas import Subject
from hub.runtime import Services
from tests.hub.feeds.builders import CENTRAL_CAMERA, NORTH_CAMERA, event, v1_cursor

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.commits]

POLICE = Subject(
    id="police-bot",
    kind="client",
    roles=["agency"],
    agency="police-north",
    jurisdictions=["north"],
    clearance=3,
    purpose="investigation",
)

_INSERT = """
INSERT INTO detection_event (node_id, event_id, captured_at, camera_id, classes,
                             max_confidence, content_sha256, payload)
VALUES ($1, $2, $3, $4, $5, 0.9, $6, $7::jsonb)
RETURNING id
"""


async def insert_event(
    conn: asyncpg.Connection, camera: str = NORTH_CAMERA, *, jurisdiction: str | None = None
) -> tuple[int, str]:
    """Insert one event the way ingest stores it (the feed trigger queues it), with the
    camera's registered `jurisdiction` stamped on the payload as ingest does, if given."""
    data: dict[str, Any] = event(camera, captured_at=datetime.now(UTC).isoformat())
    if jurisdiction is not None:
        data["jurisdiction"] = jurisdiction
    payload = msgspec.json.encode(data)
    pk = await conn.fetchval(
        _INSERT,
        uuid.uuid4(),
        uuid.UUID(data["event_id"]),
        datetime.fromisoformat(data["captured_at"]),
        camera,
        ["person", "plate"],
        hashlib.sha256(payload).digest(),
        payload.decode(),
    )
    return int(pk), str(data["event_id"])


async def sequenced_north_events(services: Services, n: int = 3) -> None:
    """`n` events from the north camera, stored and given feed positions."""
    conn = await asyncpg.connect(services.settings.database_url)
    try:
        for _ in range(n):
            await insert_event(conn, NORTH_CAMERA)
    finally:
        await conn.close()
    await sequence_and_announce(services.feeds)


async def drain(
    services: Services, reader: Reader, cursor: str | None
) -> tuple[list[str], str | None]:
    """Page until the feed has nothing more; the event ids seen and the last cursor."""
    seen: list[str] = []
    while True:
        result = await read_page(
            services.feeds, reader, cursor=cursor, filters=FeedFilters(), limit=7
        )
        assert result.page is not None
        seen += [str(item.event_id) for item in result.page.items]
        cursor = result.page.next_cursor
        if not result.page.has_more:
            return seen, cursor


async def test_a_transaction_committing_late_is_not_skipped(feed_services: Services) -> None:
    reader = await resolve_reader(feed_services.feeds, POLICE, decision_id=None)
    url = feed_services.settings.database_url
    slow, fast = await asyncpg.connect(url), await asyncpg.connect(url)
    try:
        slow_tx = slow.transaction()
        await slow_tx.start()
        slow_pk, slow_id = await insert_event(slow)  # smaller id, not yet committed
        fast_pk, fast_id = await insert_event(fast)  # larger id, committed at once
        assert slow_pk < fast_pk
        await sequence_and_announce(feed_services.feeds)
        first, cursor = await drain(feed_services, reader, None)
        assert first == [fast_id]  # an id-ordered cursor would now sit past slow_pk
        await slow_tx.commit()
    finally:
        await slow.close()
        await fast.close()
    await sequence_and_announce(feed_services.feeds)
    second, _ = await drain(feed_services, reader, cursor)
    assert second == [slow_id]


async def test_concurrent_writers_and_a_reader_see_every_event_exactly_once(
    feed_services: Services,
) -> None:
    reader = await resolve_reader(feed_services.feeds, POLICE, decision_id=None)
    url = feed_services.settings.database_url
    written: list[tuple[int, str]] = []
    done = asyncio.Event()

    async def writer() -> None:
        conn = await asyncpg.connect(url)
        try:
            for _ in range(15):
                async with conn.transaction():
                    for camera in (NORTH_CAMERA, CENTRAL_CAMERA):
                        pk, event_id = await insert_event(conn, camera)
                        if camera == NORTH_CAMERA:
                            written.append((pk, event_id))
                    await asyncio.sleep(random.uniform(0, 0.02))
                await sequence_and_announce(feed_services.feeds)
        finally:
            await conn.close()

    async def read_while_writing() -> list[str]:
        seen: list[str] = []
        cursor: str | None = None
        while not done.is_set():
            more, cursor = await drain(feed_services, reader, cursor)
            seen += more
            await asyncio.sleep(0.005)
        more, _ = await drain(feed_services, reader, cursor)
        return seen + more

    reading = asyncio.create_task(read_while_writing())
    await asyncio.gather(*(writer() for _ in range(8)))
    done.set()
    seen = await reading

    assert len(seen) == len(set(seen)), "an event was served twice"
    assert set(seen) == {event_id for _, event_id in written}, "an event was skipped"
    by_pk = [event_id for _, event_id in sorted(written)]
    assert seen != by_pk, "commits never overtook each other; the test proved nothing"


async def test_every_page_is_audited_with_ids_and_decisions(feed_services: Services) -> None:
    reader = await resolve_reader(feed_services.feeds, POLICE, decision_id="authz-1")
    conn = await asyncpg.connect(feed_services.settings.database_url)
    try:
        for camera in (NORTH_CAMERA, CENTRAL_CAMERA, NORTH_CAMERA):
            await insert_event(conn, camera)
        await sequence_and_announce(feed_services.feeds)
        result = await read_page(
            feed_services.feeds, reader, cursor=None, filters=FeedFilters(), limit=100
        )
        rows = await conn.fetch(
            "SELECT actor, action, detail, decision_id FROM audit_log "
            "WHERE action LIKE 'feeds.%' ORDER BY seq"
        )
    finally:
        await conn.close()
    assert result.page is not None
    assert len(rows) == 1
    detail = msgspec.json.decode(rows[0]["detail"])
    assert rows[0]["actor"] == "client:police-bot"
    assert rows[0]["decision_id"] == "authz-1"
    # The audit names hub-wide positions; the agency is shown its own pseudonyms of them.
    shown = feed_services.feeds.positions.shown(detail["seqs"], agency=reader.agency)
    assert shown == [item.seq for item in result.page.items]
    assert len(detail["seqs"]) == 2
    # The central event (outside north's jurisdiction) is not even offered to the police.
    assert detail["withheld"] == []
    assert detail["decision_ids"] == [item.decision_id for item in result.page.items]


async def test_a_version_one_cursor_resumes_where_it_was_and_is_counted(
    feed_services: Services,
) -> None:
    kit = feed_services.feeds
    reader = await resolve_reader(kit, POLICE, decision_id=None)
    await sequenced_north_events(feed_services)
    first = await read_page(kit, reader, cursor=None, filters=FeedFilters(), limit=100)
    assert first.page is not None
    hub_wide = kit.positions.stated([i.seq for i in first.page.items], agency="police-north")
    old = v1_cursor(kit.hash_key, hub_wide[0], agency="police-north")
    counted = kit.metrics.cursors.labels(version="1")._value.get()

    resumed = await read_page(kit, reader, cursor=old, filters=FeedFilters(), limit=100)

    assert resumed.page is not None
    assert [i.event_id for i in resumed.page.items] == [i.event_id for i in first.page.items[1:]]
    assert "." not in resumed.page.next_cursor  # what it gets back is a version 2 cursor
    assert kit.metrics.cursors.labels(version="1")._value.get() == counted + 1
