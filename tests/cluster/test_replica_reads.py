"""Reads that tolerate staleness on the rig's streaming replica: `Database.reader()` uses it
while its replay lag is within the bound, and the primary when it falls behind or vanishes."""

import asyncio
import time

import asyncpg
import pytest

from hub.kit.db import Database, PoolOptions, ReplicaReads
from tests.cluster.kit import DATABASE, cluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(120)]

REPLICA = "postgresql://postgres@10.231.0.12:5432/hub_cluster"
MAX_LAG = 2.0


async def served_by(db: Database) -> str:
    """The address of the server `reader()` picked."""
    async with db.reader() as conn:
        return str(await conn.fetchval("SELECT host(inet_server_addr())"))


async def becomes(db: Database, address: str, *, within: float) -> bool:
    """True once `reader()` picks `address` (polled every 0.1 s). A read that was on the
    replica when it vanished fails (after the replica's command timeout): that is the cost
    of a cut, counted here as "not yet"."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if await served_by(db) == address:
                return True
        except (OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError):
            pass
        await asyncio.sleep(0.1)
    return False


async def write_for(seconds: float) -> None:
    """Commit a small write on the primary every 0.1 s (replay lag needs something to lag)."""
    conn = await asyncpg.connect(DATABASE, timeout=5)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS cluster_probe (at timestamptz)")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await conn.execute("INSERT INTO cluster_probe VALUES (now())")
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def set_replay(paused: bool) -> None:
    """Pause or resume WAL replay on the replica (streaming goes on)."""
    conn = await asyncpg.connect(REPLICA, timeout=5)
    try:
        await conn.execute(f"SELECT pg_wal_replay_{'pause' if paused else 'resume'}()")
    finally:
        await conn.close()


async def test_reads_follow_the_replica_lag_and_fall_back(rig: None) -> None:
    options = PoolOptions(min_size=1, max_size=2, connect_timeout=2)
    replica = ReplicaReads(
        REPLICA, options=options, max_lag_seconds=MAX_LAG, check_seconds=0.2, command_timeout=2
    )
    db = Database(DATABASE, options=options, replica=replica)
    await db.start()
    try:
        assert await becomes(db, "10.231.0.12", within=5), "a fresh replica serves reads"
        await set_replay(paused=True)
        try:
            await write_for(MAX_LAG + 1.5)
            assert await becomes(db, "10.231.0.11", within=3), "a lagging replica is skipped"
        finally:
            await set_replay(paused=False)
        assert await becomes(db, "10.231.0.12", within=5), "a replica that caught up is used"
        await asyncio.to_thread(cluster, "cut", "pg2")
        try:
            assert await becomes(db, "10.231.0.11", within=10), "an unreachable replica is skipped"
        finally:
            await asyncio.to_thread(cluster, "restore", "pg2")
        assert await becomes(db, "10.231.0.12", within=15), "a reachable replica is used again"
    finally:
        await db.stop()
