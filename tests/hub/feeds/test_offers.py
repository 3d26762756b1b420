"""Feeds over offers: a page's limit counts released items, a reader pages only what its
agency may be offered, and the decision log says why an event went to an agency."""

import shutil
from pathlib import Path

import asyncpg
import httpx
import msgspec
import pytest
from lxml import etree

from hub.app import create_app
from hub.feeds import offers, repository
from hub.feeds.offers import AudienceSpec
from hub.feeds.pages import audience_of, offered_within, read_page, take_offered
from hub.feeds.schemas import FeedFilters
from hub.feeds.service import resolve_reader, sequence_and_announce
from hub.kit.soap import SOAP_ENV
from hub.policy.bundle import load_bundle_dir
from hub.policy.decisions import decisions_for_event
from hub.policy.engines import load_engine
from hub.runtime import Services
from hub.settings import Settings
from tests.hub.feeds.builders import CENTRAL_CAMERA, NORTH_CAMERA, bearer, event, upload_to
from tests.hub.feeds.test_service import POLICE, insert_event, sequenced_north_events
from tests.support import EdgeNode, ThreadedServer

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.commits]

BUNDLE = Path(__file__).resolve().parents[3] / "policies"
TNS = "urn:hub:feeds:v1"


def get_events(limit: int, cursor: str | None = None) -> bytes:
    """A SOAP GetEvents call."""
    inner = f"<cursor>{cursor}</cursor>" if cursor else ""
    return (
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body>'
        f'<GetEvents xmlns="{TNS}">{inner}<limit>{limit}</limit></GetEvents>'
        "</soap:Body></soap:Envelope>"
    ).encode()


async def test_limit_counts_released_items_on_rest_and_soap(
    feed_settings: Settings, agencies: None, edge_node: EdgeNode, tokens: dict[str, str]
) -> None:
    # One north event in four: the police may see 6 of these 24.
    cameras = [NORTH_CAMERA if i % 4 == 0 else CENTRAL_CAMERA for i in range(24)]
    with ThreadedServer(create_app(feed_settings)) as server:
        await upload_to(server.url, edge_node, *(event(c) for c in cameras))
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            rest = await http.get(
                "/v1/feeds/events", params={"limit": 5}, headers=bearer(tokens["police"])
            )
            headers = {**bearer(tokens["police"]), "Content-Type": "text/xml; charset=utf-8"}
            soap = await http.post("/soap/feed", content=get_events(5), headers=headers)
            cursor = etree.fromstring(soap.content).findtext(f".//{{{TNS}}}nextCursor")
            rest_of = await http.post("/soap/feed", content=get_events(5, cursor), headers=headers)
    assert rest.status_code == 200, rest.text
    assert len(rest.json()["items"]) == 5
    assert rest.json()["has_more"] is True
    assert soap.status_code == 200, soap.text
    first = etree.fromstring(soap.content)
    assert len(first.findall(f".//{{{TNS}}}event")) == 5
    assert first.findtext(f".//{{{TNS}}}hasMore") == "true"
    last = etree.fromstring(rest_of.content)
    assert len(last.findall(f".//{{{TNS}}}event")) == 1
    assert last.findtext(f".//{{{TNS}}}hasMore") == "false"


async def test_an_agency_that_sees_a_tenth_pages_only_its_events(
    feed_services: Services,
) -> None:
    reader = await resolve_reader(feed_services.feeds, POLICE, decision_id=None)
    conn = await asyncpg.connect(feed_services.settings.database_url)
    try:
        north = set()
        for i in range(100):
            _, event_id = await insert_event(conn, NORTH_CAMERA if i % 10 == 3 else CENTRAL_CAMERA)
            if i % 10 == 3:
                north.add(event_id)
        await sequence_and_announce(feed_services.feeds)
        # Release decisions only: an earlier test's server may still flush its authz ones.
        before = await conn.fetchval(
            "SELECT count(*) FROM policy_decisions WHERE entrypoint = 'hub/release/decision'"
        )
        result = await read_page(
            feed_services.feeds, reader, cursor=None, filters=FeedFilters(), limit=100
        )
        await feed_services.decisions.wait_flushed()
        decisions = await conn.fetch(
            """SELECT input::text AS input FROM policy_decisions
               WHERE entrypoint = 'hub/release/decision' ORDER BY at"""
        )
        offered = await conn.fetchval("SELECT count(*) FROM feed_offer")
        audit = await conn.fetchval(
            "SELECT detail::text FROM audit_log WHERE action = 'feeds.events.read'"
        )
    finally:
        await conn.close()
    assert result.page is not None
    assert {str(item.event_id) for item in result.page.items} == north
    assert result.page.has_more is False
    assert offered == 10
    assert msgspec.json.decode(audit)["withheld"] == []
    # One decision per distinct verdict: central and north judged once for the offers, and
    # the page's ten items share one decision, not ten.
    new = [msgspec.json.decode(d["input"]) for d in decisions][before:]
    assert len(new) <= 3, new
    page_decisions = [d for d in new if "event_ids" in d["record"]]
    assert len(page_decisions) == 1
    assert set(page_decisions[0]["record"]["event_ids"]) == north


async def test_the_decision_log_says_why_an_event_went_to_an_agency(
    feed_services: Services,
) -> None:
    reader = await resolve_reader(feed_services.feeds, POLICE, decision_id=None)
    conn = await asyncpg.connect(feed_services.settings.database_url)
    try:
        _, shown = await insert_event(conn, NORTH_CAMERA)
        _, hidden = await insert_event(conn, CENTRAL_CAMERA)
    finally:
        await conn.close()
    await sequence_and_announce(feed_services.feeds)
    result = await read_page(
        feed_services.feeds, reader, cursor=None, filters=FeedFilters(), limit=10
    )
    await feed_services.decisions.wait_flushed()
    why = await decisions_for_event(feed_services.db, shown.upper())
    why_not = await decisions_for_event(feed_services.db, hidden)
    assert result.page is not None
    (item,) = result.page.items
    (decision,) = why
    assert decision.decision_id == item.decision_id
    assert decision.input["recipient"]["id"] == "police-north"
    assert decision.input["purpose"] == "investigation"
    assert decision.input["record"]["camera_id"] == NORTH_CAMERA
    assert decision.result["allow"] is True
    assert decision.result["reason"].startswith("release to police-north")
    assert why_not == []  # never offered to anyone who read, so never released


async def test_a_new_bundle_judges_the_offers_again_from_the_readers_cursor(
    feed_services: Services, tmp_path: Path
) -> None:
    reader = await resolve_reader(feed_services.feeds, POLICE, decision_id=None)
    conn = await asyncpg.connect(feed_services.settings.database_url)
    try:
        _, north = await insert_event(conn, NORTH_CAMERA)
        _, central = await insert_event(conn, CENTRAL_CAMERA)
    finally:
        await conn.close()
    await sequence_and_announce(feed_services.feeds)
    first = await read_page(
        feed_services.feeds, reader, cursor=None, filters=FeedFilters(), limit=10
    )
    assert first.page is not None
    assert [str(i.event_id) for i in first.page.items] == [north]
    # The new bundle puts the central camera in the north: the police may now see it.
    shutil.copytree(BUNDLE, tmp_path / "bundle")
    data_file = tmp_path / "bundle" / "data.json"
    data = msgspec.json.decode(data_file.read_bytes())
    data["hub"]["config"]["release"]["camera_jurisdictions"][CENTRAL_CAMERA] = "north"
    data_file.write_bytes(msgspec.json.encode(data))
    (tmp_path / "bundle" / ".manifest").write_bytes(
        msgspec.json.encode({"revision": "offers-test-2", "roots": ["hub", "system"]})
    )
    feed_services.policy.activate(load_engine(load_bundle_dir(tmp_path / "bundle")))
    again = await read_page(
        feed_services.feeds, reader, cursor=None, filters=FeedFilters(), limit=10
    )
    assert again.page is not None
    assert [str(i.event_id) for i in again.page.items] == [north, central]


async def police_with_three_north_events(services: Services) -> AudienceSpec:
    """Three sequenced events from the north camera; police-north's audience."""
    spec = audience_of(await resolve_reader(services.feeds, POLICE, decision_id=None))
    await sequenced_north_events(services)
    return spec


async def test_offers_reset_between_cover_and_read_are_never_read_as_empty(
    feed_services: Services,
) -> None:
    kit = feed_services.feeds
    spec = await police_with_three_north_events(feed_services)
    cover = await offers.cover(kit, spec, after=0, extend=False)
    unchanged = await offered_within(kit, spec, cover, after=0, filters=FeedFilters(), limit=10)
    assert unchanged is not None
    assert len(unchanged) == 3
    # Another reader, on a newer bundle revision, resets the audience (deleting its offers)
    # between this reader's cover and its read: the read must say so, not return nothing.
    async with kit.db.transaction() as tx:
        await repository.reset_audience(tx, audience_id=cover.id, revision="newer", at=0)
    assert await offered_within(kit, spec, cover, after=0, filters=FeedFilters(), limit=10) is None
    # The page covers again under the active revision and finds all three.
    taken = await take_offered(kit, spec, after=0, filters=FeedFilters(), limit=10)
    assert len(taken.rows) == 3
    assert taken.more is False


async def test_a_fill_draws_its_database_time_from_the_page_budget(
    feed_services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    kit = feed_services.feeds
    spec = await police_with_three_north_events(feed_services)
    drawn: list[int] = []
    monkeypatch.setattr(kit.gate, "charge_database", drawn.append)
    await offers.cover(kit, spec, after=0, extend=False)  # fills the new audience
    await offers.cover(kit, spec, after=0, extend=False)  # covered: no fill, no charge
    assert len(drawn) == 1
    assert drawn[0] > 0
