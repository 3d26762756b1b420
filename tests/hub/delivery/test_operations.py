"""Operating deliveries: circuit breaker, pause/resume and auto-pause, dead-letter replay
through the admin API and the CLI, back-pressure at ingest, admin validation."""

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import asyncpg
import msgspec
import pytest
from arq.constants import in_progress_key_prefix
from arq.worker import Worker
from litestar.testing import AsyncTestClient

from hub.app import create_app
from hub.delivery.breaker import CircuitBreaker
from hub.identity.tokens import TokenEntry, append_token, new_token, token_hash
from hub.runtime import Services
from hub.settings import Settings
from tests.hub.delivery.harness import (
    EVENTS,
    Receivers,
    all_settled,
    ingest,
    quick,
    register,
    running_worker,
    settings_env,
    statuses,
    wait_until,
)
from tests.hub.identity.builders import admin_token_fields
from tests.hub.ingest.builders import batch, event
from tests.support import BASE_URL, EdgeNode, read_http_request, run_hub, signed_headers

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.commits]


def north_events(count: int) -> list[dict[str, object]]:
    return [event(camera_id="demo-cam-1", model_name="demo-synthetic") for _ in range(count)]


async def attempt_count(settings: Settings) -> int:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM delivery_attempt"))
    finally:
        await conn.close()


def issue(path: Path, subject: str, **fields: object) -> str:
    token = new_token()
    entry = {"sha256": token_hash(token), "subject": subject, **fields}
    append_token(path, msgspec.convert(entry, TokenEntry))
    return token


@pytest.fixture
async def admin(
    settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[AsyncTestClient, dict[str, str]]]:
    """An API client with admin and agency bearer tokens (headers by role)."""
    tokens = tmp_path / "tokens.toml"
    headers = {
        "admin": {
            "Authorization": "Bearer "
            + issue(tokens, "ada", roles=["admin"], **admin_token_fields())
        },
        "agency": {
            "Authorization": "Bearer "
            + issue(tokens, "bot", kind="client", roles=["agency"], agency="police-north")
        },
    }
    app = create_app(msgspec.structs.replace(settings, api_tokens_file=str(tokens)))
    async with AsyncTestClient(app=app, base_url=BASE_URL) as client:
        yield client, headers  # type: ignore[misc]


async def test_breaker_opens_on_failures_and_closes_after_a_probe(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: Receivers,
) -> None:
    agencies = await register(services, receivers, ("police-north",))
    agency_id = agencies["police-north"].id
    fast = quick(settings, breaker_failure_threshold=3, breaker_open_seconds=3)
    breaker = CircuitBreaker(services.redis, threshold=3, open_seconds=3)
    receivers.stop()
    await ingest(client, edge_node, north_events(10))

    async with running_worker(fast):

        async def opened() -> bool:
            return (await breaker.state(agency_id, "police-north")).state == "open"

        await wait_until(opened, what="breaker open")
        # While open, no attempt is made (none is spent either). Attempts that had started
        # before it opened finish first (connection refused is quick).
        await asyncio.sleep(0.3)
        before = await attempt_count(settings)
        await asyncio.sleep(1.0)
        assert await attempt_count(settings) == before
        receivers.start()
        await wait_until(lambda: all_settled(settings, 10), what="all delivered after the probe")

    state = await breaker.state(agency_id, "police-north")
    assert (state.state, state.consecutive_failures) == ("closed", 0)
    assert receivers.inbox.summary().unique == 10


async def test_a_batch_stops_sending_once_it_meets_the_breaker_threshold(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: Receivers,
) -> None:
    # One send at a time, so exactly `threshold` attempts fail before the batch stops; the
    # other rows go back unattempted (no attempt spent, no attempt row) and wait for the
    # circuit, instead of all being tried against a dead agency.
    agencies = await register(services, receivers, ("police-north",), max_concurrency=1)
    agency_id = agencies["police-north"].id
    fast = quick(settings, breaker_failure_threshold=3, breaker_open_seconds=30)
    breaker = CircuitBreaker(services.redis, threshold=3, open_seconds=30)
    receivers.stop()
    await ingest(client, edge_node, north_events(10))

    async with running_worker(fast):

        async def opened() -> bool:
            return (await breaker.state(agency_id, "police-north")).state == "open"

        await wait_until(opened, what="breaker open")
        await asyncio.sleep(0.5)
        conn = await asyncpg.connect(settings.database_url)
        try:
            rows = await conn.fetch("SELECT status, attempts FROM delivery")
        finally:
            await conn.close()

    assert await attempt_count(settings) == 3
    assert sorted((r["status"], r["attempts"]) for r in rows) == sorted(
        [("retrying", 1)] * 3 + [("pending", 0)] * 7
    )


def delivery_jobs_run(worker: Worker) -> int:
    """Jobs the worker has finished in any way (run, re-queued by `Retry`, or failed)."""
    return worker.jobs_complete + worker.jobs_retried + worker.jobs_failed


async def test_an_open_circuit_is_not_woken_by_ingest_and_half_opens_on_time(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: Receivers,
) -> None:
    # A dead agency's job used to run after every ingest commit only to find the circuit open.
    # Now its jobs wait in the queue, deferred to the half-open moment: commits add nothing,
    # and the probe still goes when the circuit half-opens.
    agencies = await register(services, receivers, ("police-north",))
    agency_id = agencies["police-north"].id
    fast = quick(settings, breaker_failure_threshold=3, breaker_open_seconds=3)
    breaker = CircuitBreaker(services.redis, threshold=3, open_seconds=3)
    queue = services.delivery.queue
    receivers.stop()
    await ingest(client, edge_node, north_events(5))

    async with running_worker(fast) as worker:

        async def opened() -> bool:
            return (await breaker.state(agency_id, "police-north")).state == "open"

        await wait_until(opened, what="breaker open")
        ids = [queue.job_id(agency_id), queue.job_id(agency_id, ":again")]

        async def held() -> bool:
            scores = await services.redis.client.zmscore(queue.queue_name, ids)
            return not worker.tasks and all(s and s > time.time() * 1000 for s in scores)

        # Commits now queue the agency's job and its follow-up at most once each: each finds
        # the circuit open and stays queued until it half-opens.
        for _ in range(2):
            await ingest(client, edge_node, north_events(1))
            await asyncio.sleep(0.2)
        await wait_until(held, what="both of the agency's jobs held in the queue")
        state = await breaker.state(agency_id, "police-north")
        assert state.opened_at is not None
        half_open_ms = (state.opened_at + 3) * 1000
        for score in await services.redis.client.zmscore(queue.queue_name, ids):
            # Due when the circuit half-opens (+ up to 1 s of spread).
            assert half_open_ms - 100 <= score <= half_open_ms + 1_100
        ran = delivery_jobs_run(worker)
        for _ in range(5):  # five ingest commits, each waking the agency
            await ingest(client, edge_node, north_events(2))
        await asyncio.sleep(0.5)
        assert delivery_jobs_run(worker) == ran
        assert not worker.tasks
        receivers.start()
        # Nothing else wakes it: the held job probes at half-open time, then delivers all.
        await wait_until(lambda: all_settled(settings, 17), within=10, what="all delivered")
    assert receivers.inbox.summary().unique == 17


async def test_wake_now_brings_jobs_held_by_an_open_circuit_forward(
    services: Services,
) -> None:
    agency = uuid4()
    queue = services.delivery.queue
    client = services.redis.client
    assert await queue.wake([agency]) == 1
    assert await queue.wake([agency]) == 0  # the follow-up
    later_ms = (time.time() + 60) * 1000
    ids = [queue.job_id(agency, suffix) for suffix in ("", ":again")]
    await client.zadd(queue.queue_name, dict.fromkeys(ids, later_ms), xx=True)  # as Retry does
    assert await queue.wake([agency]) == 0
    assert all(s == later_ms for s in await client.zmscore(queue.queue_name, ids))
    assert await queue.wake_now([agency]) == 0
    now_ms = time.time() * 1000
    for score in await client.zmscore(queue.queue_name, ids):
        assert score is not None
        assert now_ms - 1_000 <= score <= now_ms


class SlowAgency:
    """A REST agency on loopback that answers every request `delay` seconds after reading it
    (kept-alive connections, like a real one); counts what it answered."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.answered = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/events"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await read_http_request(reader)
                await asyncio.sleep(self.delay)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                await writer.drain()
                self.answered += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


async def test_a_slow_agency_batch_gives_back_rows_it_cannot_send_within_the_lease(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: Receivers,
) -> None:
    # One send at a time, 1.2 s per answer, a 5 s lease: one job could not send the 5 rows it
    # claims (6 s) before its lease ran out and arq cancelled it, leaving answered rows
    # unrecorded and sending them again once reclaimed. Rows whose turn comes after 0.4 of
    # the lease go back unattempted, so each is sent once, by a job that records it.
    slow = SlowAgency(delay=1.2)
    url = await slow.start()
    fast = quick(settings, delivery_job_timeout_seconds=5, delivery_reconcile_grace_seconds=1)
    try:
        await register(
            services, SlowConfig(url, receivers.secret), ("police-north",),  # type: ignore[arg-type]
            kind="rest", max_concurrency=1,
        )  # fmt: skip
        await ingest(client, edge_node, north_events(5))
        async with running_worker(fast, cron=True):
            await wait_until(lambda: all_settled(settings, 5), within=40, what="all delivered")
    finally:
        await slow.stop()
    assert await statuses(settings) == {"delivered": 5}
    assert slow.answered == 5  # none sent twice
    assert await attempt_count(settings) == 5


class SlowConfig:
    """Stands in for `Receivers` in `register`: the REST configuration of a `SlowAgency`."""

    def __init__(self, url: str, secret: str) -> None:
        self.url, self.secret = url, secret

    def config(self, kind: str) -> dict[str, object]:
        assert kind == "rest"
        return {"url": self.url, "secrets": [self.secret], "timeout_seconds": 5}


async def test_paused_agency_waits_and_resume_delivers(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: Receivers,
    admin: tuple[AsyncTestClient, dict[str, str]],
) -> None:
    api, headers = admin
    await register(services, receivers, ("police-north",))
    paused = await api.post(
        "/v1/admin/agencies/police-north/pause",
        json={"reason": "maintenance window"},
        headers=headers["admin"],
    )
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "paused"
    await ingest(client, edge_node, north_events(5))

    async with running_worker(quick(settings)):
        await asyncio.sleep(1.0)
        assert await attempt_count(settings) == 0
        assert (await statuses(settings)) == {"pending": 5}
        resumed = await api.post("/v1/admin/agencies/police-north/resume", headers=headers["admin"])
        assert resumed.status_code == 200, resumed.text
        await wait_until(lambda: all_settled(settings, 5), what="delivered after resume")

    listed = await api.get("/v1/admin/agencies", headers=headers["admin"])
    (health,) = listed.json()
    assert health["agency"]["status"] == "active"
    assert health["counts"] == {"delivered": 5}
    assert health["breaker"]["state"] == "closed"


async def test_agency_failing_too_long_is_paused_automatically(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: Receivers,
) -> None:
    agencies = await register(services, receivers, ("police-north",))
    agency_id = agencies["police-north"].id
    # The agency has been failing for an hour already (as the breaker remembers it).
    key = services.redis.key("breaker", str(agency_id))
    await services.redis.client.hset(
        key, mapping={"failures": 1, "failing_since": time.time() - 3600}
    )
    receivers.stop()
    await ingest(client, edge_node, north_events(1))

    async with running_worker(quick(settings, agency_auto_pause_seconds=600)):

        async def paused() -> bool:
            conn = await asyncpg.connect(settings.database_url)
            try:
                return await conn.fetchval("SELECT status FROM agency") == "paused"
            finally:
                await conn.close()

        await wait_until(paused, what="auto-pause")

    conn = await asyncpg.connect(settings.database_url)
    try:
        reason = await conn.fetchval("SELECT paused_reason FROM agency")
        audited = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'agency.auto_pause'"
        )
    finally:
        await conn.close()
    assert reason.startswith("auto-paused: failing for 60 min")
    assert audited == 1


async def test_dead_letter_replayed_through_the_api_keeps_its_delivery_id(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: Receivers,
    admin: tuple[AsyncTestClient, dict[str, str]],
) -> None:
    api, headers = admin
    await register(services, receivers, ("police-north",))
    receivers.inbox.fail_next(1, 422)
    await ingest(client, edge_node, north_events(1))

    # With reconcile running, as in production: a replay issued while the dead attempt's job
    # is still being closed by arq is not queued twice, and reconcile picks it up instead.
    async with running_worker(quick(settings), cron=True):
        await wait_until(lambda: all_settled(settings, 1), what="dead letter")
        dead = await api.get("/v1/admin/deliveries?status=dead", headers=headers["admin"])
        (letter,) = dead.json()
        assert letter["last_status_code"] == 422
        replay = await api.post(
            f"/v1/admin/deliveries/{letter['id']}/replay", headers=headers["admin"]
        )
        assert replay.status_code == 200, replay.text
        await wait_until(lambda: all_settled(settings, 1), what="replayed delivery")

    detail = await api.get(f"/v1/admin/deliveries/{letter['id']}", headers=headers["admin"])
    body = detail.json()
    assert body["delivery"]["status"] == "delivered"
    assert [a["outcome"] for a in body["attempts"]] == ["dead", "delivered"]
    assert receivers.inbox.count_of(letter["id"]) == 1
    again = await api.post(f"/v1/admin/deliveries/{letter['id']}/replay", headers=headers["admin"])
    assert again.status_code == 409
    assert again.json()["type"].endswith("/delivery_not_dead")


async def test_dead_letters_replayed_by_time_range_from_the_cli(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: Receivers,
) -> None:
    await register(services, receivers, ("police-north",))
    receivers.inbox.fail_next(3, 400)
    await ingest(client, edge_node, north_events(3))
    async with running_worker(quick(settings), cron=True):
        await wait_until(lambda: all_settled(settings, 3), what="three dead letters")
        assert await statuses(settings) == {"dead": 3}
        env = settings_env(settings)
        listed = await run_hub("deliveries", "list", "--json", env=env)
        assert listed.returncode == 0, listed.stderr
        assert len(msgspec.json.decode(listed.stdout)) == 3
        done = await run_hub(
            "deliveries",
            "replay",
            "--since",
            "2000-01-01",
            "--until",
            "2100-01-01",
            "--json",
            env=env,
        )
        assert done.returncode == 0, done.stderr
        assert msgspec.json.decode(done.stdout)["replayed"] == 3
        await wait_until(lambda: all_settled(settings, 3), what="replayed")
    assert await statuses(settings) == {"delivered": 3}


async def test_ingest_answers_503_while_deliveries_are_backed_up(
    settings: Settings, services: Services, edge_node: EdgeNode, receivers: Receivers
) -> None:
    await register(services, receivers, ("police-north",))
    tight = msgspec.structs.replace(settings, backpressure_max_backlog=5)
    async with AsyncTestClient(app=create_app(tight), base_url=BASE_URL) as client:
        await ingest(client, edge_node, north_events(10))  # nobody delivers: 10 due rows
        await asyncio.sleep(1.1)  # the backlog is measured at most once a second
        body = batch(*north_events(1))
        refused = await client.post(
            EVENTS, content=body, headers=signed_headers(edge_node.signer, path=EVENTS, body=body)
        )
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == str(tight.backpressure_retry_after_seconds)
    assert refused.json()["type"].endswith("/backpressure")
    conn = await asyncpg.connect(settings.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM detection_event") == 10
    finally:
        await conn.close()


async def test_admin_routes_validate_and_refuse_non_admins(
    receivers: Receivers, admin: tuple[AsyncTestClient, dict[str, str]]
) -> None:
    api, headers = admin
    good = {"name": "police-north", "kind": "rest", "config": receivers.config("rest")}
    refused = await api.post("/v1/admin/agencies", json=good, headers=headers["agency"])
    assert refused.status_code == 403
    bad_config = {**good, "config": {"url": "ftp://nowhere", "secrets": []}}
    invalid = await api.post("/v1/admin/agencies", json=bad_config, headers=headers["admin"])
    assert invalid.status_code == 422
    assert invalid.json()["type"].endswith("/adapter_config")
    unknown = await api.post(
        "/v1/admin/agencies", json={**good, "kind": "fax"}, headers=headers["admin"]
    )
    assert unknown.status_code == 422
    assert "fax" in unknown.json()["detail"]
    created = await api.post("/v1/admin/agencies", json=good, headers=headers["admin"])
    assert created.status_code == 201, created.text
    assert "secrets" not in created.text  # never echoed back
    duplicate = await api.post("/v1/admin/agencies", json=good, headers=headers["admin"])
    assert duplicate.status_code == 409
    tested = await api.post("/v1/admin/agencies/police-north/test", headers=headers["admin"])
    assert tested.json()["delivered"] is True
    assert receivers.inbox.items()[-1].test is True
    missing = await api.get(f"/v1/admin/deliveries/{uuid4()}", headers=headers["admin"])
    assert missing.status_code == 404


async def test_wake_ups_queue_at_most_two_jobs_per_agency(services: Services) -> None:
    agencies = [uuid4() for _ in range(3)]
    queue = services.delivery.queue

    assert await queue.wake(agencies + agencies) == 3  # one job per agency, named by it
    assert await queue.depth() == 3
    # A wake-up that finds the agency's job taken queues one follow-up (the job may be
    # returning at that moment); more wake-ups change nothing.
    assert await queue.wake(agencies) == 0
    assert await queue.wake(agencies) == 0
    assert await queue.depth() == 6
    queued = await services.redis.client.zrange(queue.queue_name, 0, -1)
    assert sorted(q.decode() for q in queued) == sorted(
        queue.job_id(a, suffix) for a in agencies for suffix in ("", ":again")
    )


async def test_an_armed_timer_is_brought_forward_never_back(services: Services) -> None:
    agency = uuid4()
    queue = services.delivery.queue
    timer = queue.job_id(agency, ":at")

    assert await queue.wake_later(agency, delay=60)
    first = await services.redis.client.zscore(queue.queue_name, timer)
    assert not await queue.wake_later(agency, delay=120)
    assert await services.redis.client.zscore(queue.queue_name, timer) == first
    assert not await queue.wake_later(agency, delay=1)
    sooner = await services.redis.client.zscore(queue.queue_name, timer)
    assert sooner is not None
    assert first is not None
    assert first - 60_000 < sooner < first - 50_000


@pytest.mark.parametrize("name", ["police-north", "transit-authority", "city-analytics"])
async def test_each_kind_answers_a_test_message(
    services: Services, receivers: Receivers, name: str
) -> None:
    from hub.delivery.agencies import get_agency, send_test

    await register(services, receivers, (name,))
    _, agency = await get_agency(services.db, name)
    result = await send_test(services.audit, services.delivery.adapters, agency, actor="test")
    assert result.delivered, result.error
    (item,) = receivers.inbox.items()
    assert item.test is True
    assert item.delivery_id == str(result.delivery_id)
    receivers.stop()
    down = await send_test(services.audit, services.delivery.adapters, agency, actor="test")
    assert (down.delivered, down.retryable) == (False, True)


async def test_a_wake_up_finding_both_jobs_running_brings_the_timer_forward(
    services: Services,
) -> None:
    agency = uuid4()
    queue = services.delivery.queue
    client = services.redis.client
    assert await queue.wake_later(agency, delay=60)
    timer = queue.job_id(agency, ":at")
    armed = await client.zscore(queue.queue_name, timer)
    assert await queue.wake([agency]) == 1
    assert await queue.wake([agency]) == 0  # the follow-up is queued: the timer stays
    assert await client.zscore(queue.queue_name, timer) == armed
    # Both jobs taken by workers (arq marks them in progress, out of the queue): both may be
    # returning, so the wake-up must leave something that runs soon.
    for suffix in ("", ":again"):
        job = queue.job_id(agency, suffix)
        await client.zrem(queue.queue_name, job)
        await client.set(in_progress_key_prefix + job, b"1", px=60_000)
    assert await queue.wake([agency]) == 0
    sooner = await client.zscore(queue.queue_name, timer)
    assert sooner is not None
    assert armed is not None
    assert sooner < armed - 55_000
