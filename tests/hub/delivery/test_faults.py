"""Nothing lost, nothing doubled: a worker killed with SIGKILL mid-burst, Redis losing the
queue mid-burst. Receivers are idempotent; each delivery id must be acknowledged once."""

import asyncio

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from hub.delivery.dispatch import BATCH_SIZE
from hub.runtime import Services
from hub.settings import Settings
from tests.hub.delivery.harness import (
    Receivers,
    WorkerProcess,
    all_settled,
    ingest,
    quick,
    register,
    running_worker,
    statuses,
    wait_until,
)
from tests.hub.ingest.builders import event
from tests.support import EdgeNode

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.commits, pytest.mark.slow]


def burst(count: int) -> list[list[dict[str, object]]]:
    """`count` events from the north camera, in batches of 100."""
    events = [event(camera_id="demo-cam-1", model_name="demo-synthetic") for _ in range(count)]
    return [events[i : i + 100] for i in range(0, count, 100)]


@pytest.mark.timeout(150)
async def test_worker_killed_mid_burst_loses_nothing(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: Receivers,
) -> None:
    await register(services, receivers, ("police-north",))
    fast = quick(settings, delivery_job_timeout_seconds=5, worker_maintenance_timeout_seconds=5)
    for batch in burst(1000):
        await ingest(client, edge_node, batch)

    worker = WorkerProcess(fast)
    worker.start()
    try:

        async def some_delivered() -> bool:
            return (await statuses(settings)).get("delivered", 0) >= 150

        await wait_until(some_delivered, within=60, what="the first deliveries")
        worker.kill()
        at_kill = await statuses(settings)
        assert at_kill.get("delivered", 0) < 1000, "burst finished before the kill"
        worker.start()
        await wait_until(lambda: all_settled(settings, 1000), within=80, what="all delivered")
    finally:
        worker.stop()

    assert await statuses(settings) == {"delivered": 1000}
    summary = receivers.inbox.summary()
    assert summary.unique == 1000
    # At-least-once to the wire: only the batches in flight at the kill (at most two jobs of
    # one agency) can be sent twice, and the idempotent receiver recognises those by delivery
    # id (acknowledged, not re-processed).
    assert summary.duplicates <= 2 * BATCH_SIZE


async def test_queue_lost_mid_burst_is_rebuilt_by_reconcile(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: Receivers,
) -> None:
    await register(services, receivers, ("police-north",))
    for batch in burst(300):
        await ingest(client, edge_node, batch)
    fast = quick(settings)
    # What a Redis flush or restart without persistence loses: the queue and the job
    # records. (Only our own keys: the Redis server is shared.)
    redis = Redis.from_url(settings.redis_url)
    try:
        queued = [m.decode() for m in await redis.zrange(services.delivery.queue.queue_name, 0, -1)]
        # Three ingest batches woke one agency: its job and one follow-up, not 300 jobs.
        assert len(queued) == 2
        await redis.delete(services.delivery.queue.queue_name, *[f"arq:job:{i}" for i in queued])
    finally:
        await redis.aclose()

    async with running_worker(fast):
        await asyncio.sleep(1.0)
        assert (await statuses(settings)).get("delivered", 0) == 0  # nothing left to run
    async with running_worker(fast, cron=True):  # reconcile runs at start-up, then every 5 s
        await wait_until(lambda: all_settled(settings, 300), what="all delivered")

    summary = receivers.inbox.summary()
    assert (summary.unique, summary.duplicates) == (300, 0)
