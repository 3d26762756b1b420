"""FIFO per agency and per camera (ADR 0019): order at a real receiver under two concurrent
workers, a failed head that blocks only its own agency (or camera) and says so, a dead
letter that unblocks, a replay that joins the end, and `none` as before."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from hub.app import create_app
from hub.delivery import ordering
from hub.delivery.agencies import agency_health, get_agency
from hub.delivery.deadletters import replay_one
from hub.delivery.dispatch import DeliveryDeps, Held, run_agency
from hub.delivery.schemas import AgencyHealth
from hub.identity.tokens import TokenEntry, append_token, new_token, token_hash
from hub.runtime import Services, start_policy, stop_policy
from hub.settings import Settings
from tests.hub.delivery.harness import (
    Receivers,
    WorkerProcess,
    all_settled,
    ingest,
    quick,
    register,
    running_worker,
    settings_env,
    wait_until,
)
from tests.hub.identity.builders import admin_token_fields
from tests.hub.ingest.builders import event
from tests.support import BASE_URL, EdgeNode, run_hub

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.commits]


@pytest.fixture
def other_receivers(tmp_path: Path) -> Any:
    """A second receiver server: another agency's, failing on its own."""
    found = Receivers(tmp_path / "other")
    found.start()
    yield found
    found.stop()


@asynccontextmanager
async def two_workers(services: Services, *, batch_size: int) -> AsyncIterator[list[DeliveryDeps]]:
    """What two worker processes hold (own directory, limits and semaphores), policy loaded;
    small batches so their claims interleave."""
    watcher = await start_policy(services, role="worker")
    try:
        kit = services.delivery
        yield [
            replace(
                kit.worker_deps(services.db, services.redis, services.policy),
                batch_size=batch_size,
            )
            for _ in range(2)
        ]
    finally:
        await stop_policy(services, watcher)


async def drain(deps: DeliveryDeps, agency_id: UUID) -> None:
    """One worker's jobs for an agency, back to back, until nothing is open."""
    for _ in range(10_000):
        again = await run_agency(deps, agency_id)
        if again is None:
            return
        await asyncio.sleep(0.05 if isinstance(again, Held) else min(again, 0.05))
    raise AssertionError("the agency never ran dry")


async def ledger(settings: Settings, agency: str) -> list[asyncpg.Record]:
    """The agency's deliveries in queue order, with each event's id and camera."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        return list(
            await conn.fetch(
                """SELECT d.id, d.status, d.order_seq, d.camera_id, e.event_id::text AS event_id,
                          e.camera_id AS event_camera
                     FROM delivery d JOIN agency a ON a.id = d.agency_id
                     JOIN detection_event e
                       ON e.id = d.event_pk AND e.captured_at = d.event_captured_at
                    WHERE a.name = $1 ORDER BY d.order_seq NULLS LAST, e.id""",
                agency,
            )
        )
    finally:
        await conn.close()


def received(receivers: Receivers) -> list[str]:
    """Event ids in the order the receiver acknowledged them."""
    return [item.event_id for item in receivers.by_kind("rest") if item.event_id]


def interleave(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One event of each list in turn."""
    return [e for pair in zip(first, second, strict=True) for e in pair]


def cams(camera: str, count: int) -> list[dict[str, Any]]:
    return [event(camera_id=camera, model_name="demo-synthetic") for _ in range(count)]


BATCH = 25


async def post_all(client: AsyncTestClient, node: EdgeNode, events: list[dict[str, Any]]) -> None:
    """Post in batches, one after another (each batch commits before the next starts)."""
    for start in range(0, len(events), BATCH):
        await ingest(client, node, events[start : start + BATCH])


def commit_order(posted: list[dict[str, Any]]) -> list[str]:
    """The order ADR 0019 promises for events posted by `post_all`: batch by batch (one
    transaction each, one after another), and by capture time within a batch."""
    batches = [posted[i : i + BATCH] for i in range(0, len(posted), BATCH)]
    return [e["event_id"] for b in batches for e in sorted(b, key=lambda e: e["captured_at"])]


async def test_agency_order_holds_at_the_receiver_under_two_concurrent_workers(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: Receivers,
) -> None:
    agency = (await register(services, receivers, ("police-north",), ordering="agency"))[
        "police-north"
    ]
    # Camera 2 is not police-north's to see: withheld rows end without sending, blocking none.
    posted = interleave(cams("demo-cam-1", 60), cams("demo-cam-2", 60))
    await post_all(client, edge_node, posted)

    async with two_workers(services, batch_size=7) as workers:
        await asyncio.gather(*(drain(deps, agency.id) for deps in workers))

    rows = await ledger(settings, "police-north")
    assert {r["status"] for r in rows} == {"delivered", "withheld"}
    camera_of = {e["event_id"]: e["camera_id"] for e in posted}
    expected = commit_order(posted)
    # Each once, one at a time, in commit order; the queue's numbers follow it too.
    assert received(receivers) == [i for i in expected if camera_of[i] == "demo-cam-1"]
    assert receivers.inbox.summary().duplicates == 0
    assert [r["event_id"] for r in rows] == expected


async def test_camera_order_holds_per_camera_under_two_concurrent_workers(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: Receivers,
) -> None:
    # transit-authority sees cameras 2 and 3; sent over REST here to read one inbox.
    agency = (
        await register(services, receivers, ("transit-authority",), kind="rest", ordering="camera")
    )["transit-authority"]
    posted = interleave(cams("demo-cam-2", 50), cams("demo-cam-3", 50))
    await post_all(client, edge_node, posted)

    async with two_workers(services, batch_size=9) as workers:
        await asyncio.gather(*(drain(deps, agency.id) for deps in workers))

    camera_of = {e["event_id"]: e["camera_id"] for e in posted}
    got = received(receivers)
    assert sorted(got) == sorted(camera_of)
    for camera in ("demo-cam-2", "demo-cam-3"):
        assert [i for i in got if camera_of[i] == camera] == [
            e["event_id"] for e in posted if e["camera_id"] == camera
        ]
    rows = await ledger(settings, "transit-authority")
    assert all(r["camera_id"] == r["event_camera"] for r in rows)


async def test_an_ordered_claim_takes_only_heads_no_other_worker_holds(
    services: Services, client: AsyncTestClient, edge_node: EdgeNode, receivers: Receivers
) -> None:
    await register(services, receivers, ("police-north",), ordering="agency")
    await register(services, receivers, ("transit-authority",), kind="rest", ordering="camera")
    await post_all(client, edge_node, cams("demo-cam-2", 3))
    await post_all(client, edge_node, cams("demo-cam-3", 3))
    _, police = await get_agency(services.db, "police-north")
    _, transit = await get_agency(services.db, "transit-authority")

    first = await ordering.claim(services.db, police, limit=2, lease_seconds=30)
    # The rest of the queue waits behind rows another worker holds.
    assert await ordering.claim(services.db, police, limit=10, lease_seconds=30) == []
    assert [c.order_seq for c in first] == sorted(c.order_seq or 0 for c in first)

    by_camera = await ordering.claim(services.db, transit, limit=2, lease_seconds=30)
    assert [c.queue for c in by_camera] == ["demo-cam-2", "demo-cam-2"]
    # Camera 2's queue is held; camera 3's is free.
    more = await ordering.claim(services.db, transit, limit=10, lease_seconds=30)
    assert {c.queue for c in more} == {"demo-cam-3"}
    assert len(more) == 3


def block_of(health: list[AgencyHealth], name: str) -> list[Any]:
    return next(item.blocked for item in health if item.agency.name == name)


async def test_a_failing_head_blocks_only_its_agency_visibly(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: Receivers,
    other_receivers: Receivers,
) -> None:
    await register(services, receivers, ("police-north",), ordering="agency", retry_schedule=[2.5])
    await register(
        services, other_receivers, ("transit-authority",), kind="rest", ordering="agency"
    )
    posted = cams("demo-cam-1", 5) + cams("demo-cam-2", 5)
    await post_all(client, edge_node, posted)
    receivers.inbox.fail_next(1, 503)  # police-north's receiver only; Retry-After 1 < 2.5

    async with running_worker(quick(settings)):

        async def other_done_and_head_failed() -> bool:
            # Both, not one before the other: on a loaded machine the worker can finish the
            # healthy agency's five before it first tries police-north's head (seen in CI).
            if len(received(other_receivers)) != 5:
                return False
            health = await agency_health(services.db, services.delivery.breaker)
            return bool(block_of(health, "police-north"))

        await wait_until(
            other_done_and_head_failed,
            what="the healthy agency's deliveries and police-north's failed head",
        )
        # Only police-north waits: its head failed once and is due again in 2.5 s.
        assert received(receivers) == []
        health = await agency_health(services.db, services.delivery.breaker)
        rows = await ledger(settings, "police-north")
        head = next(r for r in rows if r["event_camera"] == "demo-cam-1")
        [block] = block_of(health, "police-north")
        assert (block.delivery_id, block.camera, block.attempts) == (head["id"], None, 1)
        assert block.since is not None
        # Every later row waits, camera 2's too (policy withholds those when they reach the
        # front: a withheld row ends unsent and blocks nothing, but it keeps its turn).
        assert block.waiting == 9
        assert "503" in (block.last_error or "")
        assert block_of(health, "transit-authority") == []

        await wait_until(lambda: all_settled(settings, 20), what="all settled")

    assert received(receivers) == [e["event_id"] for e in posted[:5]]
    health = await agency_health(services.db, services.delivery.breaker)
    assert block_of(health, "police-north") == []


async def test_in_camera_mode_a_failing_head_blocks_only_its_camera(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: Receivers,
) -> None:
    await register(
        services,
        receivers,
        ("transit-authority",),
        kind="rest",
        ordering="camera",
        retry_schedule=[3.0],
    )
    posted = interleave(cams("demo-cam-2", 6), cams("demo-cam-3", 6))
    camera_of = {e["event_id"]: e["camera_id"] for e in posted}
    await post_all(client, edge_node, posted)
    receivers.inbox.fail_next(1, 500)  # whichever camera's head goes first fails once

    async with running_worker(quick(settings)):

        async def one_camera_done() -> bool:
            return len(received(receivers)) == 6

        await wait_until(one_camera_done, what="the healthy camera's deliveries")
        await asyncio.sleep(0.3)  # nothing more may arrive while the other camera waits
        got = received(receivers)
        assert len(got) == 6
        [free] = {camera_of[i] for i in got}
        [block] = block_of(
            await agency_health(services.db, services.delivery.breaker), "transit-authority"
        )
        assert block.camera != free
        assert block.waiting == 5
        await wait_until(lambda: all_settled(settings, 12), what="all settled")

    got = received(receivers)
    for camera in ("demo-cam-2", "demo-cam-3"):
        assert [i for i in got if camera_of[i] == camera] == [
            e["event_id"] for e in posted if e["camera_id"] == camera
        ]


async def test_a_dead_lettered_head_unblocks_and_a_replay_joins_the_end(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: Receivers,
) -> None:
    await register(services, receivers, ("police-north",), ordering="agency")
    posted = cams("demo-cam-1", 6)
    await post_all(client, edge_node, posted)
    receivers.inbox.fail_next(1, 400)  # permanent: the head is dead-lettered at once

    async with running_worker(quick(settings)):
        await wait_until(lambda: all_settled(settings, 6), what="all settled")
        assert received(receivers) == [e["event_id"] for e in posted[1:]]
        [head] = [r for r in await ledger(settings, "police-north") if r["status"] == "dead"]
        assert (head["status"], head["event_id"]) == ("dead", posted[0]["event_id"])
        more = cams("demo-cam-1", 2)
        await replay_one(
            services.db, services.delivery.queue, head["id"], actor="test", extra_attempts=3
        )
        await post_all(client, edge_node, more)
        await wait_until(lambda: all_settled(settings, 8), what="replay and new events settled")

    # The replayed delivery went behind what was queued before it was replayed.
    got = received(receivers)
    assert got[:5] == [e["event_id"] for e in posted[1:]]
    assert got[5] == posted[0]["event_id"]
    assert got[6:] == [e["event_id"] for e in more]


async def test_without_ordering_rows_get_no_place_and_all_arrive(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: Receivers,
) -> None:
    agency = (await register(services, receivers, ("police-north",)))["police-north"]
    assert agency.ordering == "none"
    await post_all(client, edge_node, cams("demo-cam-1", 30))

    async with two_workers(services, batch_size=7) as workers:
        await asyncio.gather(*(drain(deps, agency.id) for deps in workers))

    rows = await ledger(settings, "police-north")
    assert {r["status"] for r in rows} == {"delivered"}
    assert all(r["order_seq"] is None and r["camera_id"] is None for r in rows)
    assert receivers.inbox.summary().unique == 30


@pytest.fixture
async def admin(settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[Any, dict[str, str]]]:
    """An API client and an admin's bearer header."""
    tokens = tmp_path / "tokens.toml"
    token = new_token()
    entry = {"sha256": token_hash(token), "subject": "ada", "roles": ["admin"]}
    append_token(tokens, msgspec.convert({**entry, **admin_token_fields()}, TokenEntry))
    app = create_app(msgspec.structs.replace(settings, api_tokens_file=str(tokens)))
    async with AsyncTestClient(app=app, base_url=BASE_URL) as api:
        yield api, {"Authorization": f"Bearer {token}"}


async def test_ordering_is_set_by_the_api_and_a_blocked_queue_shows_in_api_and_cli(
    settings: Settings,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: Receivers,
    admin: tuple[Any, dict[str, str]],
) -> None:
    api, headers = admin
    body = {
        "name": "police-north",
        "kind": "rest",
        "config": receivers.config("rest"),
        "jurisdictions": ["north"],
        "clearance": 3,
        "retry_schedule": [60],
        "ordering": "camera",
    }
    created = await api.post("/v1/admin/agencies", json=body, headers=headers)
    assert (created.status_code, created.json()["ordering"]) == (201, "camera"), created.text
    bad = await api.patch(
        "/v1/admin/agencies/police-north", json={"ordering": "sideways"}, headers=headers
    )
    assert bad.status_code == 400, bad.text
    assert bad.headers["content-type"].startswith("application/problem+json")
    missing = await api.patch(
        "/v1/admin/agencies/nobody", json={"ordering": "agency"}, headers=headers
    )
    assert missing.status_code == 404
    changed = await api.patch(
        "/v1/admin/agencies/police-north", json={"ordering": "agency"}, headers=headers
    )
    assert changed.json()["ordering"] == "agency"

    posted = cams("demo-cam-1", 3)
    await post_all(client, edge_node, posted)
    receivers.inbox.fail_next(1, 500)
    async with running_worker(quick(settings)):

        async def head_failed() -> bool:
            rows = await ledger(settings, "police-north")
            return any(r["status"] == "retrying" for r in rows)

        await wait_until(head_failed, what="the head's failed attempt")
    [health] = (await api.get("/v1/admin/agencies", headers=headers)).json()
    [block] = health["blocked"]
    head = (await ledger(settings, "police-north"))[0]
    assert (block["delivery_id"], block["camera"], block["waiting"]) == (str(head["id"]), None, 2)
    assert head["event_id"] == commit_order(posted)[0]

    env = settings_env(settings)
    listed = await run_hub("agencies", "list", env=env)
    assert f"BLOCKED agency queue by delivery {head['id']}" in listed.stdout, listed.stderr
    blocked = await run_hub("deliveries", "blocked", "--json", env=env)
    assert blocked.returncode == 1, blocked.stderr
    assert [b["delivery_id"] for b in msgspec.json.decode(blocked.stdout)] == [str(head["id"])]
    # The CLI changes it too; camera mode: the same head now blocks only camera 1's queue.
    updated = await run_hub("agencies", "update", "police-north", "--ordering", "camera", env=env)
    assert updated.stdout.strip() == "police-north: ordering camera", updated.stderr
    [health] = (await api.get("/v1/admin/agencies", headers=headers)).json()
    assert [(b["delivery_id"], b["camera"]) for b in health["blocked"]] == [
        (str(head["id"]), "demo-cam-1")
    ]


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_a_worker_killed_mid_queue_resumes_in_place(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: Receivers,
) -> None:
    await register(services, receivers, ("police-north",), ordering="agency")
    posted = cams("demo-cam-1", 600)
    await post_all(client, edge_node, posted)
    fast = quick(settings, delivery_job_timeout_seconds=5, worker_maintenance_timeout_seconds=5)
    worker = WorkerProcess(fast)
    worker.start()
    try:

        async def some_delivered() -> bool:
            return len(received(receivers)) >= 100

        await wait_until(some_delivered, within=60, what="the first deliveries")
        worker.kill()
        assert len(received(receivers)) < 600, "the queue drained before the kill"
        worker.start()  # the killed worker's leased rows come back after the 5 s lease
        await wait_until(lambda: all_settled(settings, 600), within=80, what="all delivered")
    finally:
        worker.stop()

    # First arrivals in commit order; what the killed worker had sent but not recorded is
    # sent again (same delivery ids), which the receiver recognises.
    assert received(receivers) == commit_order(posted)
    assert receivers.inbox.summary().unique == 600
