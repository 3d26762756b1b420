"""The database kit on several hosts: replica reads with a lag bound, the primary as fallback,
and pools that prepare no named statements (PgBouncer in transaction mode)."""

import time
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
import pytest

from hub.kit.db import Database, PoolOptions, ReplicaReads, with_database
from hub.settings import Settings

pytestmark = pytest.mark.db


def _replica(url: str, *, max_lag: float = 5.0) -> ReplicaReads:
    return ReplicaReads(url, options=PoolOptions(min_size=0, max_size=2), max_lag_seconds=max_lag)


async def test_reader_uses_a_fresh_replica(database_url: str) -> None:
    # Another database on the same server stands in for the replica: a server that is not in
    # recovery has no lag, so reads go there (current_database() tells which one answered).
    db = Database(
        database_url,
        min_size=0,
        max_size=2,
        replica=_replica(with_database(database_url, "postgres")),
    )
    await db.start()
    try:
        async with db.reader() as conn:
            assert await conn.fetchval("SELECT current_database()") == "postgres"
        assert db.replica is not None
        assert db.replica.last_lag == 0.0
    finally:
        await db.stop()


async def test_reader_falls_back_to_the_primary_when_the_replica_is_down(
    database_url: str,
) -> None:
    down = "postgresql://postgres@127.0.0.1:1/postgres"  # nothing listens on port 1
    db = Database(database_url, min_size=0, max_size=2, replica=_replica(down))
    await db.start()
    try:
        async with db.reader() as conn:
            name = await conn.fetchval("SELECT current_database()")
        assert name == database_url.rsplit("/", 1)[1].split("?")[0]
        assert db.replica is not None
        assert not await db.replica.fresh()
    finally:
        await db.stop()


async def test_a_replica_that_is_not_streaming_never_counts_as_fresh(database_url: str) -> None:
    # The lag query itself: a primary answers 0; the NULL branch (in recovery, no receiver)
    # cannot be staged on one server, so the bound is checked with a lag it must refuse.
    replica = _replica(with_database(database_url, "postgres"), max_lag=5.0)
    try:
        assert await replica.fresh()
        replica._mark(lag=None, reason="not streaming")
        assert replica._fresh is False
        replica._mark(lag=6.0, reason="lag")
        assert replica._fresh is False
        replica._mark(lag=4.0, reason="lag")
        assert replica._fresh is True
    finally:
        await replica.stop()


async def test_statement_cache_zero_leaves_no_named_statement(settings: Settings) -> None:
    # Behind PgBouncer in transaction mode a statement prepared by name on one server
    # connection is missing on the next; with the cache off asyncpg prepares none by name.
    for size, expect_named in ((0, False), (100, True)):
        db = Database.from_settings(
            msgspec.structs.replace(settings, db_statement_cache_size=size, db_pool_min=1)
        )
        await db.start()
        try:
            async with db.pool.acquire() as conn:
                await conn.fetchval("SELECT $1::int + 1", 1)
                named = await conn.fetchval("SELECT count(*) FROM pg_prepared_statements")
            assert (named > 0) is expect_named, (size, named)
        finally:
            await db.stop()


async def test_a_multi_host_url_finds_the_writable_server(database_url: str) -> None:
    # The first host refuses connections; target_session_attrs=read-write takes the next one
    # that accepts writes, as after a promotion.
    parts = urlsplit(database_url)
    url = urlunsplit(
        parts._replace(
            netloc=f"postgres@127.0.0.1:1,{parts.hostname}:{parts.port or 5432}",
            query="target_session_attrs=read-write",
        )
    )
    db = Database(url, options=PoolOptions(min_size=1, max_size=1, connect_timeout=5))
    await db.start()
    try:
        assert await db.pool.fetchval("SELECT NOT pg_is_in_recovery()")
    finally:
        await db.stop()


async def test_stop_ends_even_when_a_connection_is_never_given_back(database_url: str) -> None:
    db = Database(database_url, options=PoolOptions(min_size=0, max_size=2, connect_timeout=0.5))
    await db.start()
    await db.pool.acquire()  # held, as by a task cancelled mid-query: never given back
    started = time.monotonic()
    await db.stop()
    assert time.monotonic() - started < 3  # before, it waited for the connection forever
    assert db.engine.pool is None
    await db.stop()  # idempotent


async def _last_statement(database_url: str, pid: int) -> str:
    """What the server says a backend ran last (read from another connection)."""
    watcher = await asyncpg.connect(database_url)
    try:
        query: str = await watcher.fetchval(
            "SELECT query FROM pg_stat_activity WHERE pid = $1", pid
        )
        return query
    finally:
        await watcher.close()


async def test_a_connection_that_left_no_session_state_comes_back_without_a_reset(
    database_url: str,
) -> None:
    db = Database(database_url, options=PoolOptions(min_size=1, max_size=1))
    await db.start()
    try:
        async with db.transaction() as conn:
            pid = conn.get_server_pid()
            await conn.fetchval("SELECT $1::int + 1", 1)
            await conn.execute("SET LOCAL lock_timeout = '1s'")  # ends with the transaction
        assert "RESET ALL" not in await _last_statement(database_url, pid)
        async with db.pool.acquire() as conn:
            await conn.fetchval("SELECT pg_advisory_xact_lock(42)")
        assert "RESET ALL" not in await _last_statement(database_url, pid)
    finally:
        await db.stop()


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT pg_advisory_lock(4242)",
        "SET statement_timeout = '7s'",
        "SELECT set_config('statement_timeout', '7s', false)",
    ],
)
async def test_a_connection_that_left_session_state_is_reset_before_reuse(
    database_url: str, statement: str
) -> None:
    # One connection in the pool, so the second acquire gets the one the first gave back.
    db = Database(database_url, options=PoolOptions(min_size=1, max_size=1))
    await db.start()
    try:
        async with db.pool.acquire() as conn:
            pid = conn.get_server_pid()
            default_timeout = await conn.fetchval("SHOW statement_timeout")
            await conn.execute(statement)
        assert "RESET ALL" in await _last_statement(database_url, pid)
        async with db.pool.acquire() as conn:
            assert conn.get_server_pid() == pid
            assert await conn.fetchval("SHOW statement_timeout") == default_timeout
            held = await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = $1", pid
            )
            assert held == 0
        # Reset once: the next clean use is given back without the reset query again.
        async with db.pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
        assert "RESET ALL" not in await _last_statement(database_url, pid)
    finally:
        await db.stop()
