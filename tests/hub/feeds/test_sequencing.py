"""Sequencing off ingest's path (ADR 0022): ingest answers without waiting for positions,
a reader still sees every event committed before it asked, and fills are bounded."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import msgspec
import pytest

from hub.feeds import offers, repository
from hub.feeds.kit import VacuumCount
from hub.feeds.pages import audience_of, read_page
from hub.feeds.schemas import FeedFilters
from hub.feeds.service import resolve_reader, sequence_and_announce
from hub.runtime import Services, build_services, start_services, stop_services
from hub.settings import Settings
from tests.hub.feeds.builders import CENTRAL_CAMERA, NORTH_CAMERA
from tests.hub.feeds.test_service import POLICE, insert_event

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.commits]


async def test_ingest_does_not_wait_for_the_sequencer(feed_services: Services) -> None:
    kit = feed_services.feeds
    conn = await asyncpg.connect(feed_services.settings.database_url)
    blocker = await asyncpg.connect(feed_services.settings.database_url)
    try:
        await insert_event(conn, NORTH_CAMERA)
        # Another sequencer holds the lock: a run started now cannot finish until it ends.
        await _hold_sequencer_lock(blocker)
        await asyncio.wait_for(
            kit.notifier.published(node_id=uuid.uuid4(), event_ids={uuid.uuid4()}), 1.0
        )
        # A page gives up waiting after its bound (and reads what is sequenced by then).
        assert await kit.notifier.settle(within=0.1) is False
        settled = asyncio.create_task(kit.notifier.settle())
        await asyncio.sleep(0.3)
        assert not settled.done()  # a reader's settle does wait for this process's run
        await blocker.execute("COMMIT")
        await asyncio.wait_for(settled, 10.0)
        assert await conn.fetchval("SELECT count(*) FROM feed_entry") == 1
        assert await conn.fetchval("SELECT count(*) FROM feed_pending") == 0
    finally:
        await blocker.close()
        await conn.close()


async def test_a_page_sees_what_its_process_accepted_before_it_was_asked(
    feed_services: Services,
) -> None:
    kit = feed_services.feeds
    reader = await resolve_reader(kit, POLICE, decision_id=None)
    conn = await asyncpg.connect(feed_services.settings.database_url)
    try:
        _, first = await insert_event(conn, NORTH_CAMERA)
        await sequence_and_announce(kit)
        page = await read_page(kit, reader, cursor=None, filters=FeedFilters(), limit=10)
        # Committed after the audience was filled and announced as ingest does, which no
        # longer waits for its position: the next page still has it.
        _, second = await insert_event(conn, NORTH_CAMERA)
        await kit.notifier.published(node_id=uuid.uuid4(), event_ids={uuid.UUID(second)})
        assert page.page is not None
        after = await read_page(
            feed_services.feeds,
            reader,
            cursor=page.page.next_cursor,
            filters=FeedFilters(),
            limit=10,
        )
    finally:
        await conn.close()
    assert [str(i.event_id) for i in page.page.items] == [first]
    assert after.page is not None
    assert [str(i.event_id) for i in after.page.items] == [second]


async def test_a_fill_judges_a_bounded_number_of_entries(
    feed_services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    kit = feed_services.feeds
    spec = audience_of(await resolve_reader(kit, POLICE, decision_id=None))
    conn = await asyncpg.connect(feed_services.settings.database_url)
    try:
        for i in range(9):
            await insert_event(conn, NORTH_CAMERA if i % 3 == 0 else CENTRAL_CAMERA)
        await sequence_and_announce(kit)
        seqs = [r["seq"] for r in await conn.fetch("SELECT seq FROM feed_entry ORDER BY seq")]
        # A gap, as retention leaves one: a chunk counts entries, not positions.
        await conn.execute("DELETE FROM feed_entry WHERE seq = ANY($1)", seqs[1:5])
        monkeypatch.setattr(offers, "FILL_CHUNK", 2)
        first = await offers.cover(kit, spec, after=0, extend=False)
        second = await offers.cover(kit, spec, after=first.hi, extend=False)
        third = await offers.cover(kit, spec, after=second.hi, extend=False)
    finally:
        await conn.close()
    assert (first.lo, first.hi) == (0, seqs[5])
    assert second.hi == seqs[7]
    assert third.hi == seqs[8] == third.last


async def test_sequencing_answers_how_many_positions_and_the_first_and_last(
    feed_services: Services,
) -> None:
    conn = await asyncpg.connect(feed_services.settings.database_url)
    try:
        for _ in range(4):
            await insert_event(conn, NORTH_CAMERA)
        # Stored quarantined, as ingest stores one: never queued, so it gets no position.
        quarantined, _ = await insert_event(conn, NORTH_CAMERA)
        await conn.execute(
            "UPDATE detection_event SET disposition = 'quarantined' WHERE id = $1", quarantined
        )
        await conn.execute("DELETE FROM feed_pending WHERE event_pk = $1", quarantined)
        async with conn.transaction():
            # Batches of two: the run goes on until a batch moves fewer than that.
            assigned = await repository.sequence_pending(conn, batch=2)
        seqs = [r["seq"] for r in await conn.fetch("SELECT seq FROM feed_entry ORDER BY seq")]
        async with conn.transaction():
            nothing = await repository.sequence_pending(conn)
        left = await conn.fetchval("SELECT count(*) FROM feed_pending")
    finally:
        await conn.close()
    assert len(seqs) == 4
    assert assigned == repository.Sequenced(positions=4, first=seqs[0], last=seqs[-1])
    assert nothing == repository.Sequenced(0, 0, 0)
    assert left == 0


# What feed_entry copies from each event, as the sequencer places it.
_PLACED = """
SELECT e.event_id, f.camera_id, f.classes, f.media_sha256, f.jurisdiction, f.max_confidence,
       e.camera_id AS e_camera_id, e.classes AS e_classes, e.media_sha256 AS e_media,
       e.payload ->> 'jurisdiction' AS e_jurisdiction, e.max_confidence AS e_confidence
FROM feed_entry f JOIN detection_event e ON e.id = f.event_pk AND e.captured_at = f.captured_at
"""


async def test_queued_rows_carry_the_events_columns_and_older_rows_are_joined_back(
    feed_services: Services,
) -> None:
    conn = await asyncpg.connect(feed_services.settings.database_url)
    try:
        carried, carried_id = await insert_event(conn, NORTH_CAMERA, jurisdiction="north")
        queued = await conn.fetchrow(
            "SELECT camera_id, classes, jurisdiction, max_confidence FROM feed_pending"
            " WHERE event_pk = $1",
            carried,
        )
        # Rows the trigger queued before migration 0031 have none of the columns: the
        # sequencer joins those back to their event, which must still be accepted.
        older, older_id = await insert_event(conn, CENTRAL_CAMERA, jurisdiction="central")
        withdrawn, _ = await insert_event(conn, NORTH_CAMERA)
        await conn.execute(
            """UPDATE feed_pending SET camera_id = NULL, classes = NULL, media_sha256 = NULL,
                      jurisdiction = NULL, max_confidence = NULL
               WHERE event_pk = ANY($1::bigint[])""",
            [older, withdrawn],
        )
        await conn.execute(
            "UPDATE detection_event SET disposition = 'quarantined' WHERE id = $1", withdrawn
        )
        async with conn.transaction():
            assigned = await repository.sequence_pending(conn)
        placed = await conn.fetch(_PLACED)
    finally:
        await conn.close()
    assert queued is not None
    assert (queued["camera_id"], queued["classes"]) == (NORTH_CAMERA, ["person", "plate"])
    assert (queued["jurisdiction"], queued["max_confidence"]) == ("north", pytest.approx(0.9))
    assert assigned.positions == 2
    assert sorted(str(r["event_id"]) for r in placed) == sorted([carried_id, older_id])
    for row in placed:  # both ways place the event's own values
        assert (row["camera_id"], row["classes"], row["media_sha256"]) == (
            row["e_camera_id"],
            row["e_classes"],
            row["e_media"],
        )
        assert row["jurisdiction"] == row["e_jurisdiction"] in {"north", "central"}
        assert row["max_confidence"] == row["e_confidence"]


@asynccontextmanager
async def _services_with(settings: Settings, **changes: Any) -> AsyncIterator[Services]:
    """Connected services with `changes` to the feed test settings."""
    built = build_services(msgspec.structs.replace(settings, **changes))
    await start_services(built)
    try:
        yield built
    finally:
        await stop_services(built)


@pytest.fixture
async def lingering(feed_settings: Settings, agencies: None) -> AsyncIterator[Services]:
    """Feed services whose sequencing runs linger 5 s behind a run under way (ADR 0033)."""
    async with _services_with(feed_settings, feeds_sequence_linger_ms=5000) as built:
        yield built


async def test_batches_behind_a_run_share_the_next_which_a_page_starts_at_once(
    lingering: Services,
) -> None:
    notifier = lingering.feeds.notifier
    conn = await asyncpg.connect(lingering.settings.database_url)
    blocker = await asyncpg.connect(lingering.settings.database_url)
    try:
        await insert_event(conn, NORTH_CAMERA)
        await _hold_sequencer_lock(blocker)
        await notifier.published(node_id=uuid.uuid4(), event_ids={uuid.uuid4()})  # runs now
        await insert_event(conn, NORTH_CAMERA)
        await notifier.published(node_id=uuid.uuid4(), event_ids={uuid.uuid4()})  # queues
        await blocker.execute("COMMIT")
        await _until(conn, "SELECT count(*) = 2 FROM feed_entry")  # the first run placed both
        await insert_event(conn, NORTH_CAMERA)
        await notifier.published(node_id=uuid.uuid4(), event_ids={uuid.uuid4()})  # joins it
        await asyncio.sleep(0.5)
        lingered = await conn.fetchval("SELECT count(*) FROM feed_pending")
        started = asyncio.get_running_loop().time()
        assert await notifier.settle(within=3.0) is True
        took = asyncio.get_running_loop().time() - started
        placed = await conn.fetchval("SELECT count(*) FROM feed_entry")
    finally:
        await blocker.close()
        await conn.close()
    assert lingered == 1  # the queued run waited for company
    assert took < 2.0  # ... until a page asked for positions
    assert placed == 3


async def test_a_lone_batch_on_a_quiet_process_is_placed_at_once(lingering: Services) -> None:
    conn = await asyncpg.connect(lingering.settings.database_url)
    try:
        await insert_event(conn, NORTH_CAMERA)
        await lingering.feeds.notifier.published(node_id=uuid.uuid4(), event_ids={uuid.uuid4()})
        await _until(conn, "SELECT count(*) = 1 FROM feed_entry", seconds=2.0)
    finally:
        await conn.close()


async def _until(conn: asyncpg.Connection, query: str, *, seconds: float = 10.0) -> None:
    """Poll `query` (a boolean) until it holds; fail after `seconds`."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await conn.fetchval(query):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still false after {seconds} s: {query}")
        await asyncio.sleep(0.05)


async def _hold_sequencer_lock(conn: asyncpg.Connection) -> None:
    """Take the sequencer lock in an open transaction of `conn`, as another process's run
    would hold it (released by COMMIT)."""
    await conn.execute("BEGIN")
    await conn.execute("SELECT pg_advisory_xact_lock($1)", repository.SEQUENCER_LOCK_KEY)


@pytest.fixture
async def vacuuming(feed_settings: Settings, agencies: None) -> AsyncIterator[Services]:
    """Feed services that vacuum the sequencing queue after every 3 rows they sequence."""
    async with _services_with(feed_settings, feeds_pending_vacuum_rows=3) as built:
        yield built


async def test_the_sequencer_vacuums_its_queue_every_so_many_rows(vacuuming: Services) -> None:
    conn = await asyncpg.connect(vacuuming.settings.database_url)
    try:
        before = await _vacuums_of_queue(conn)
        for _ in range(2):
            await insert_event(conn, NORTH_CAMERA)
        await sequence_and_announce(vacuuming.feeds)  # 2 rows of 3: not yet
        await asyncio.sleep(0.3)
        not_yet = await _vacuums_of_queue(conn)
        await insert_event(conn, NORTH_CAMERA)
        await sequence_and_announce(vacuuming.feeds)  # the third row: vacuumed
        await _until(conn, f"SELECT {_VACUUMS} > {before}", seconds=5.0)
    finally:
        await conn.close()
    assert not_yet == before


def test_a_vacuum_is_due_every_so_many_rows_and_never_with_zero() -> None:
    every_five = VacuumCount(5)
    assert [every_five.due(n) for n in (2, 2, 1, 4, 0, 9)] == [
        False, False, True, False, False, True,
    ]  # fmt: skip
    assert not VacuumCount(0).due(1_000_000)


_VACUUMS = "(SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'feed_pending')"


async def _vacuums_of_queue(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval(f"SELECT {_VACUUMS}")
    return count
