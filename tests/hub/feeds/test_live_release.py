"""The live fan-out releases per audience as pages do: what each subscriber is sent (the
frames themselves), one decision record per verdict, and only what the audience may be
offered. Real PostgreSQL, Redis and the default bundle; subscribers join the process's live
hub directly and events are announced as ingest's after-commit hook does."""

import asyncio
from typing import Any

import asyncpg
import msgspec
import pytest

from hub.feeds.kit import FeedKit
from hub.feeds.live import Subscriber
from hub.feeds.pages import audience_of, take_offered
from hub.feeds.schemas import FeedFilters
from hub.feeds.service import resolve_reader, sequence_and_announce
from hub.identity.schemas import Subject
from hub.policy.decisions import decisions_for_event
from hub.policy.service import PolicyService
from hub.runtime import Services
from tests.hub.feeds.builders import CENTRAL_CAMERA, NORTH_CAMERA
from tests.hub.feeds.test_service import POLICE, insert_event

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.commits]

POLICE_TOO = msgspec.structs.replace(POLICE, id="police-bot-2")
TRANSIT = Subject(
    id="transit-bot",
    kind="client",
    roles=["agency"],
    agency="transit-authority",
    jurisdictions=["central"],
    clearance=2,
    purpose="traffic",
)
PLATE = "AB-123-CD"


async def join(services: Services, subject: Subject) -> Subscriber:
    """A live subscriber for the subject's agency, wanting everything."""
    reader = await resolve_reader(services.feeds, subject, decision_id=None)
    return await services.feeds.live.subscribe(reader, FeedFilters())


async def frames(subscriber: Subscriber, count: int) -> list[str]:
    """The next `count` frames queued for a subscriber (fails after 10 s)."""
    got: list[str] = []
    async with asyncio.timeout(10):
        while len(got) < count:
            frame = await subscriber.queue.get()
            assert frame is not None, "the subscriber was dropped"
            got.append(frame)
    return got


async def nothing_more(subscriber: Subscriber) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(subscriber.queue.get(), 1.0)


async def pushes(conn: asyncpg.Connection, count: int) -> list[dict[str, Any]]:
    """The live audit entries, once `count` are written (the fan-out audits after sending)."""
    async with asyncio.timeout(10):
        while True:
            rows = await conn.fetch(
                "SELECT detail::text AS detail FROM audit_log WHERE action = 'feeds.live.push'"
            )
            if len(rows) >= count:
                return [msgspec.json.decode(r["detail"]) for r in rows]
            await asyncio.sleep(0.05)


async def release_decisions(conn: asyncpg.Connection, ids: set[str]) -> list[dict[str, Any]]:
    """Logged release decisions naming any of these events, oldest first."""
    rows = await conn.fetch(
        """SELECT input::text AS input, result::text AS result FROM policy_decisions
           WHERE entrypoint = 'hub/release/decision' AND (input -> 'record') ? 'event_ids'
             AND (input -> 'record' -> 'event_ids') ?| $1::text[]
           ORDER BY at""",
        sorted(ids),
    )
    return [
        {"input": msgspec.json.decode(r["input"]), "result": msgspec.json.decode(r["result"])}
        for r in rows
    ]


async def test_each_audience_gets_its_redacted_frames_once_per_verdict(
    feed_services: Services,
) -> None:
    police, police_too = await join(feed_services, POLICE), await join(feed_services, POLICE_TOO)
    transit = await join(feed_services, TRANSIT)
    conn = await asyncpg.connect(feed_services.settings.database_url)
    try:
        north = [(await insert_event(conn, NORTH_CAMERA))[1] for _ in range(3)]
        central = [(await insert_event(conn, CENTRAL_CAMERA))[1] for _ in range(2)]
        await sequence_and_announce(feed_services.feeds)
        to_police, to_police_too = await frames(police, 3), await frames(police_too, 3)
        to_transit = await frames(transit, 2)
        audit = await pushes(conn, 2)
        await feed_services.decisions.wait_flushed()
        decisions = await release_decisions(conn, set(north + central))
    finally:
        await conn.close()
    for subscriber in (police, police_too, transit):
        await nothing_more(subscriber)  # the events each agency may not see were withheld
    # One encoding per released item, the same frame for both police sockets.
    assert all(a is b for a, b in zip(to_police, to_police_too, strict=True))
    police_events = [msgspec.json.decode(f) for f in to_police]
    assert [e["event_id"] for e in police_events] == north
    assert all(PLATE in f for f in to_police)
    transit_events = [msgspec.json.decode(f) for f in to_transit]
    assert [e["event_id"] for e in transit_events] == central
    assert all(PLATE not in f for f in to_transit)  # redacted in the frame itself
    for message in police_events + transit_events:
        assert message["type"] == "event"
        assert message["cursor"]
    # One decision per (audience, verdict): 2 audiences x 2 verdicts, not 5 per audience.
    assert len(decisions) == 4
    police_north = [
        d
        for d in decisions
        if d["input"]["recipient"]["id"] == "police-north" and d["result"]["allow"]
    ]
    assert len(police_north) == 1
    assert sorted(police_north[0]["input"]["record"]["event_ids"]) == sorted(north)
    covered = [
        (d["input"]["recipient"]["id"], event_id)
        for d in decisions
        for event_id in d["input"]["record"]["event_ids"]
    ]
    assert len(covered) == len(set(covered)) == 10  # each event judged once per audience
    # One audit entry per audience: what was sent, what was withheld, under which decisions.
    by_subscribers = {tuple(entry["subscribers"]): entry for entry in audit}
    police_entry = by_subscribers[tuple(sorted([police.reader.actor, police_too.reader.actor]))]
    assert len(police_entry["seqs"]) == 3
    assert len(police_entry["withheld"]) == 2
    assert police_entry["decision_ids"] == [e["decision_id"] for e in police_events]
    transit_entry = by_subscribers[(transit.reader.actor,)]
    assert len(transit_entry["seqs"]) == 2
    assert len(transit_entry["withheld"]) == 3


async def test_the_decision_log_says_why_a_live_event_went_to_an_agency(
    feed_services: Services,
) -> None:
    police = await join(feed_services, POLICE)
    conn = await asyncpg.connect(feed_services.settings.database_url)
    try:
        _, shown = await insert_event(conn, NORTH_CAMERA)
        await sequence_and_announce(feed_services.feeds)
        (frame,) = await frames(police, 1)
        await pushes(conn, 1)
    finally:
        await conn.close()
    await feed_services.decisions.wait_flushed()
    found = await decisions_for_event(feed_services.db, shown)
    sent = msgspec.json.decode(frame)
    (decision,) = [d for d in found if d.decision_id == sent["decision_id"]]
    assert isinstance(decision.input, dict)
    assert decision.input["recipient"]["id"] == "police-north"
    assert shown in decision.input["record"]["event_ids"]
    assert isinstance(decision.result, dict)
    assert decision.result["allow"] is True


async def test_a_subscriber_gets_only_what_its_audience_may_be_offered(
    feed_services: Services,
) -> None:
    conn = await asyncpg.connect(feed_services.settings.database_url)
    try:
        # Policy lets the police see north events, but its subscription wants confidence
        # 0.95 and up: pages never offer them (0.9), so the live feed must not send them.
        await conn.execute(
            "UPDATE agency SET sub_min_confidence = 0.95 WHERE name = 'police-north'"
        )
        police, transit = await join(feed_services, POLICE), await join(feed_services, TRANSIT)
        _, north = await insert_event(conn, NORTH_CAMERA)
        _, central = await insert_event(conn, CENTRAL_CAMERA)
        await sequence_and_announce(feed_services.feeds)
        (to_transit,) = await frames(transit, 1)
        audit = await pushes(conn, 1)
        await feed_services.decisions.wait_flushed()
        decisions = await release_decisions(conn, {north})
    finally:
        await conn.close()
    await nothing_more(police)
    assert msgspec.json.decode(to_transit)["event_id"] == central
    assert [entry["subscribers"] for entry in audit] == [[transit.reader.actor]]
    # Nothing offered to the police audience, nothing released to it (transit's audience
    # released the north event too, and policy withheld it there).
    assert [d["input"]["recipient"]["id"] for d in decisions] == ["transit-authority"]
    assert decisions[0]["result"]["allow"] is False
    offered = await take_offered(
        feed_services.feeds, audience_of(police.reader), after=0, filters=FeedFilters(), limit=10
    )
    assert offered.rows == []  # the pages agree


async def test_when_policy_cannot_decide_nothing_is_sent_and_the_socket_stays(
    feed_services: Services,
) -> None:
    # A process whose policy has no bundle: every release decision fails closed.
    unavailable = PolicyService(None, sink=feed_services.decisions, eval_budget_ms=50)
    kit = FeedKit(
        feed_services.settings, db=feed_services.db, redis=feed_services.redis, policy=unavailable
    )
    conn = await asyncpg.connect(feed_services.settings.database_url)
    try:
        reader = await resolve_reader(kit, POLICE, decision_id=None)
        police = await kit.live.subscribe(reader, FeedFilters())
        await insert_event(conn, NORTH_CAMERA)
        await sequence_and_announce(kit)
        (entry,) = await pushes(conn, 1)
    finally:
        await conn.close()
        await kit.aclose()
    await nothing_more(police)
    assert not police.dropped  # live is best-effort: the client resumes with its cursor
    assert entry["seqs"] == []
    assert len(entry["withheld"]) == 1
