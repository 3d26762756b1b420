"""Faults across hosts of the cluster rig (scripts/cluster.sh), each under load from the edge
and each ending with every accepted event stored once and delivered once at the idempotent
receiver. Re-sends (edge batches, deliveries) are allowed and printed; losses and doubles are
not. The figures go to docs/cluster.md. The promotion runs last: it cannot be undone."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.cluster.kit import (
    Outcome,
    clear_inbox,
    cluster,
    db_now,
    execute,
    hub_running,
    settle,
    start_load,
    wait_for_leases,
)

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(420)]

RATE = 40.0  # events/s from the edge: modest, the machine's two cores are shared
DURATION = 20.0
FAULT_AT = 5.0
RESTORE_AT = 12.0
ROLL_DURATION = 60.0  # long enough to restart four hosts one after the other


async def under_load(
    tmp_path: Path,
    fault: Callable[[], Awaitable[None]],
    restore: Callable[[], Awaitable[None]] | None = None,
    *,
    duration: float = DURATION,
) -> Outcome:
    """Run the load, inject `fault` after FAULT_AT s and `restore` after RESTORE_AT s, then
    wait for the ledger to drain and count."""
    await clear_inbox()
    out = tmp_path / "load.json"
    load = await start_load(out, rate=RATE, duration=duration)
    await asyncio.sleep(FAULT_AT)
    await fault()
    if restore is not None:
        await asyncio.sleep(RESTORE_AT - FAULT_AT)
        await restore()
    assert await load.wait() == 0, "the edge load failed"
    outcome = await settle(out)
    print(f"\n{outcome.summary()}")  # noqa: T201 - the figures of docs/cluster.md
    return outcome


def assert_exactly_once(outcome: Outcome) -> None:
    """Nothing lost, nothing stored twice, every delivery acknowledged once or more."""
    assert outcome.accepted > 0
    assert outcome.stored == outcome.accepted, "accepted events missing from the store"
    assert outcome.delivered == outcome.accepted, "deliveries not delivered"
    assert outcome.received_unique == outcome.accepted, "receiver missed deliveries"


def shell(*args: str) -> Callable[[], Awaitable[None]]:
    """A fault step: scripts/cluster.sh `args`, off the event loop."""

    async def step() -> None:
        await asyncio.to_thread(cluster, *args)

    return step


async def test_api_host_killed(rig: None, tmp_path: Path) -> None:
    outcome = await under_load(tmp_path, shell("kill", "api1"), shell("start", "api1"))
    assert_exactly_once(outcome)


async def test_worker_host_killed_holding_leases(rig: None, tmp_path: Path) -> None:
    # worker2 is frozen and the agency cut off first, so rows claimed after that are
    # worker1's and stay leased (their sends hang) until worker1 dies; then the agency comes
    # back, worker2 thaws and must take the rows over once their leases expire.
    held: list[int] = []

    async def kill_worker() -> None:
        since = await db_now()
        await asyncio.to_thread(cluster, "freeze", "worker2")
        await asyncio.to_thread(cluster, "cut", "agency")
        held.append(await wait_for_leases(claimed_after=since))
        await asyncio.to_thread(cluster, "kill", "worker1")
        await asyncio.to_thread(cluster, "restore", "agency")
        await asyncio.to_thread(cluster, "thaw", "worker2")

    outcome = await under_load(tmp_path, kill_worker, shell("start", "worker1"))
    print(f"leases held by worker1 when it was killed: {held[0]}")  # noqa: T201
    assert held[0] > 0, "worker1 held no lease when it was killed"
    assert_exactly_once(outcome)


async def test_worker_partitioned_and_restored(rig: None, tmp_path: Path) -> None:
    outcome = await under_load(tmp_path, shell("cut", "worker2"), shell("restore", "worker2"))
    assert_exactly_once(outcome)


async def test_redis_master_killed_sentinel_fails_over(rig: None, tmp_path: Path) -> None:
    outcome = await under_load(tmp_path, shell("kill", "redis1"))
    assert_exactly_once(outcome)
    assert hub_running("worker1")
    assert hub_running("worker2")
    status = cluster("status").splitlines()
    assert any(line.startswith("redis2") and "role:master" in line for line in status), status


async def test_rolling_upgrade_without_a_failed_request(rig: None, tmp_path: Path) -> None:
    # Expand (a nullable column the running code does not know), restart every hub host one
    # at a time (an API drains on SIGTERM and HAProxy's check takes it out), contract.
    took: list[float] = []

    async def roll() -> None:
        started = time.monotonic()
        await execute("ALTER TABLE delivery ADD COLUMN IF NOT EXISTS rig_upgrade text")
        await execute("ALTER TABLE detection_event ADD COLUMN IF NOT EXISTS rig_upgrade text")
        for host in ("api1", "api2", "worker1", "worker2"):
            await asyncio.to_thread(cluster, "restart", host, timeout=120)
        await execute("ALTER TABLE detection_event DROP COLUMN IF EXISTS rig_upgrade")
        await execute("ALTER TABLE delivery DROP COLUMN IF EXISTS rig_upgrade")
        took.append(time.monotonic() - started)

    outcome = await under_load(tmp_path, roll, duration=ROLL_DURATION)
    print(f"expand, four restarts and contract took {took[0]:.1f} s")  # noqa: T201
    assert_exactly_once(outcome)
    assert not outcome.failed_attempts, "a request failed during the rolling upgrade"


async def test_primary_stopped_replica_promoted(rig: None, tmp_path: Path) -> None:
    outcome = await under_load(tmp_path, shell("promote"))
    assert_exactly_once(outcome)
    status = cluster("status").splitlines()
    assert any(line.startswith("pg2") and "recovery=f" in line for line in status), status
    print(f"ingest answered no 200 for {outcome.unavailable_seconds:.1f} s")  # noqa: T201
    # The hub follows the promotion: ingest comes back well before the load ends.
    assert outcome.unavailable_seconds < DURATION - FAULT_AT - 5
