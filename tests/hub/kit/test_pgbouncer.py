"""The hub's pool behind a real PgBouncer in transaction mode: with the statement cache off
(HUB_DB_STATEMENT_CACHE_SIZE=0) a query works on whichever server connection PgBouncer hands
out; with asyncpg's default cache a statement prepared on one is missing on the next. Skips,
saying why, when pgbouncer is not installed (scripts/pgbouncer.sh installs it) or cannot run."""

from collections.abc import Iterator

import asyncpg
import pytest

from hub.kit.db import Database, PoolOptions
from tests.hub.kit.bouncer import running_bouncer

pytestmark = pytest.mark.db


@pytest.fixture
def bouncer(database_url: str) -> Iterator[str]:
    """A PgBouncer (transaction mode, two server connections) in front of the test database;
    the URL to reach the database through it."""
    with running_bouncer(database_url, pool_size=2) as running:
        yield running.url


async def _query_across_server_connections(url: str, *, cache: int) -> None:
    """Client A runs a query (on server connection S1, the only one PgBouncer has used);
    client B then holds S1 in a transaction, so A's next run of the same query is given
    S2, where a statement A prepared by name on S1 does not exist."""
    options = PoolOptions(min_size=2, max_size=2, statement_cache_size=cache, connect_timeout=5)
    db = Database(url, options=options)
    await db.start()
    try:
        async with db.pool.acquire() as a, db.pool.acquire() as b:
            assert await a.fetchval("SELECT $1::int * 2", 1) == 2
            async with b.transaction():
                await b.fetchval("SELECT 1")
                assert await a.fetchval("SELECT $1::int * 2", 2) == 4
    finally:
        await db.stop()


async def test_statement_cache_off_works_behind_pgbouncer(bouncer: str) -> None:
    await _query_across_server_connections(bouncer, cache=0)


async def test_default_statement_cache_breaks_behind_pgbouncer(bouncer: str) -> None:
    # The reason for the setting (and proof the test above can fail).
    with pytest.raises(asyncpg.InvalidSQLStatementNameError):
        await _query_across_server_connections(bouncer, cache=100)


async def _advisory_locks_held(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        held: int = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
    finally:
        await conn.close()
    return held


async def _lock_then_unlock(url: str, direct: str, *, in_transaction: bool) -> tuple[bool, int]:
    """Client A takes a session advisory lock, client B then holds that server connection in
    a transaction, and A unlocks: whether the unlock found the lock, and how many advisory
    locks PostgreSQL still holds right after (before asyncpg's release resets anything)."""
    options = PoolOptions(min_size=2, max_size=2, statement_cache_size=0, connect_timeout=5)
    db = Database(url, options=options)
    await db.start()
    try:
        async with db.pool.acquire() as a, db.pool.acquire() as b:
            a_tx = a.transaction() if in_transaction else None
            if a_tx is not None:
                await a_tx.start()
            await a.execute("SELECT pg_advisory_lock(4242)")
            async with b.transaction():
                await b.fetchval("SELECT 1")
                unlocked: bool = await a.fetchval("SELECT pg_advisory_unlock(4242)")
            if a_tx is not None:
                await a_tx.commit()
            held = await _advisory_locks_held(direct)
    finally:
        await db.stop()
    return unlocked, held


async def test_a_session_lock_outside_a_transaction_stays_on_a_pooled_connection(
    bouncer: str, database_url: str
) -> None:
    # Why the workers (partition upkeep, the retention sweep: session advisory locks across
    # several statements) connect to PostgreSQL directly (docs/deploy.md): PgBouncer ran
    # the unlock on another server connection, and the lock stayed behind on the first
    # (until some client's release runs asyncpg's reset, pg_advisory_unlock_all(), there).
    assert await _lock_then_unlock(bouncer, database_url, in_transaction=True) == (True, 0)
    assert await _lock_then_unlock(bouncer, database_url, in_transaction=False) == (False, 1)
