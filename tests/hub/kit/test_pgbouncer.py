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
