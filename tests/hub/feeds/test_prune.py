"""Pruning feed audiences on real PostgreSQL: idle audiences and those of agencies gone or
disabled go with their offers, bounded per run; a reader's recorded use keeps its audience,
and a reader of a pruned (or half-pruned) audience refills it and misses nothing."""

from datetime import timedelta

import asyncpg
import pytest

from hub.feeds.offers import prune_audiences
from hub.feeds.pages import read_page
from hub.feeds.repository import PRUNED_REVISION
from hub.feeds.schemas import FeedFilters
from hub.feeds.service import Reader, resolve_reader, sequence_and_announce
from hub.identity.schemas import Subject
from hub.kit.clock import utcnow
from hub.runtime import Services
from tests.hub.feeds.builders import CENTRAL_CAMERA, NORTH_CAMERA
from tests.hub.feeds.test_service import POLICE, insert_event

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.commits]

TRANSIT = Subject(
    id="transit-bot",
    kind="client",
    roles=["agency"],
    agency="transit-authority",
    jurisdictions=["central"],
    clearance=2,
    purpose="traffic",
)


async def events(services: Services, cameras: list[str]) -> set[str]:
    conn = await asyncpg.connect(services.settings.database_url)
    try:
        ids = {(await insert_event(conn, camera))[1] for camera in cameras}
    finally:
        await conn.close()
    await sequence_and_announce(services.feeds)
    return ids


async def read_all(services: Services, reader: Reader) -> set[str]:
    """Every event id the reader is released, paging from the start, 3 items a page."""
    seen: set[str] = set()
    cursor = None
    while True:
        result = await read_page(
            services.feeds, reader, cursor=cursor, filters=FeedFilters(), limit=3
        )
        assert result.page is not None
        seen |= {str(item.event_id) for item in result.page.items}
        cursor = result.page.next_cursor
        if not result.page.has_more:
            return seen


async def sql(services: Services, query: str, *args: object) -> object:
    conn = await asyncpg.connect(services.settings.database_url)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def audiences(services: Services) -> dict[str, int]:
    """Offers per audience, by agency."""
    conn = await asyncpg.connect(services.settings.database_url)
    try:
        rows = await conn.fetch(
            """SELECT a.agency, count(o.seq) AS n FROM feed_audience a
               LEFT JOIN feed_offer o ON o.audience_id = a.id GROUP BY a.agency"""
        )
    finally:
        await conn.close()
    return {r["agency"]: r["n"] for r in rows}


async def test_idle_and_disabled_audiences_go_and_used_ones_stay(
    feed_services: Services,
) -> None:
    await events(feed_services, [NORTH_CAMERA] * 3 + [CENTRAL_CAMERA] * 4)
    police = await resolve_reader(feed_services.feeds, POLICE, decision_id=None)
    transit = await resolve_reader(feed_services.feeds, TRANSIT, decision_id=None)
    await read_all(feed_services, police)
    await read_all(feed_services, transit)
    assert await audiences(feed_services) == {"police-north": 3, "transit-authority": 4}
    idle_before = utcnow() - timedelta(days=7)

    report = await prune_audiences(feed_services.db, idle_before=idle_before)
    assert (report.audiences, report.offers, report.done) == (0, 0, True)

    await sql(feed_services, "UPDATE agency SET status = 'disabled' WHERE name = 'police-north'")
    await sql(
        feed_services,
        "UPDATE feed_audience SET used_at = now() - interval '8 days'"
        " WHERE agency = 'transit-authority'",
    )
    report = await prune_audiences(feed_services.db, idle_before=idle_before)
    assert (report.audiences, report.offers, report.done) == (2, 7, True)
    assert await audiences(feed_services) == {}


async def test_a_reader_records_its_use_so_its_audience_is_not_idle(
    feed_services: Services,
) -> None:
    await events(feed_services, [NORTH_CAMERA] * 2)
    police = await resolve_reader(feed_services.feeds, POLICE, decision_id=None)
    await read_all(feed_services, police)
    await sql(feed_services, "UPDATE feed_audience SET used_at = now() - interval '8 days'")
    await read_all(feed_services, police)  # covered already: the fast path records the use
    report = await prune_audiences(feed_services.db, idle_before=utcnow() - timedelta(days=7))
    assert report.audiences == 0
    assert await audiences(feed_services) == {"police-north": 2}


async def test_a_run_stops_at_its_bound_and_a_reader_of_a_half_pruned_audience_misses_nothing(
    feed_services: Services,
) -> None:
    await events(feed_services, [NORTH_CAMERA] * 5 + [CENTRAL_CAMERA] * 2)
    police = await resolve_reader(feed_services.feeds, POLICE, decision_id=None)
    first = await read_all(feed_services, police)
    assert len(first) == 5
    await sql(feed_services, "UPDATE feed_audience SET used_at = now() - interval '8 days'")
    idle_before = utcnow() - timedelta(days=7)

    report = await prune_audiences(feed_services.db, idle_before=idle_before, batch=2, max_offers=2)
    assert (report.audiences, report.offers, report.done) == (0, 2, False)
    assert await sql(feed_services, "SELECT revision FROM feed_audience") == PRUNED_REVISION
    # Its last three offers remain, but no reader trusts them: the audience is refilled.
    assert await read_all(feed_services, police) == first
    assert await audiences(feed_services) == {"police-north": 5}
    assert await sql(feed_services, "SELECT revision FROM feed_audience") != PRUNED_REVISION
