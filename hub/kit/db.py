"""PostgreSQL access: one Piccolo engine (and its asyncpg pool) per process.

Use cases open transactions with `Database.transaction()` and pass the connection to the
repository; hot paths run plain SQL on that asyncpg connection, simple CRUD uses Piccolo.
"""

from collections.abc import Sequence
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from piccolo.engine.postgres import PostgresEngine, PostgresTransaction
from piccolo.table import Table

from hub.kit.errors import UnavailableError


class Database:
    """Owns the Piccolo engine; tables are bound to it when the pool starts."""

    def __init__(self, url: str, *, min_size: int = 2, max_size: int = 10) -> None:
        self.url = url
        self.engine = PostgresEngine(config={"dsn": url})
        self._pool_sizes = {"min_size": min_size, "max_size": max_size}

    async def start(self, tables: Sequence[type[Table]] = ()) -> None:
        """Open the pool and point the given Piccolo tables at this engine."""
        for table in tables:
            table._meta.db = self.engine
        try:
            await self.engine.start_connection_pool(**self._pool_sizes)
        except (OSError, asyncpg.PostgresError) as exc:
            raise UnavailableError(f"PostgreSQL is not reachable: {type(exc).__name__}") from exc

    async def stop(self) -> None:
        """Close the pool (idempotent)."""
        if self.engine.pool is not None:
            await self.engine.close_connection_pool()

    def transaction(self) -> "Transaction":
        """A transaction: `async with db.transaction() as conn:`; commits unless it raises."""
        return Transaction(self.engine.transaction(allow_nested=False))

    def connection(self) -> "asyncpg.pool.PoolAcquireContext":
        """A pooled connection without a transaction, for one self-contained statement (a
        CTE that updates and inserts is atomic on its own): it saves BEGIN and COMMIT, two of
        the four round trips of a one-statement transaction, on hot paths."""
        return self.pool.acquire()

    @property
    def pool(self) -> asyncpg.Pool:
        """The asyncpg pool, for read-only statements outside a transaction."""
        if self.engine.pool is None:
            raise UnavailableError("database pool is not started")
        return self.engine.pool

    async def ping(self) -> None:
        """Raise `UnavailableError` unless PostgreSQL answers a trivial query."""
        try:
            async with self.pool.acquire(timeout=2) as conn:
                await conn.fetchval("SELECT 1", timeout=2)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise UnavailableError(f"PostgreSQL: {type(exc).__name__}") from exc


class Transaction:
    """Piccolo's transaction, yielding its asyncpg connection and never hiding an exception
    (Piccolo's own `__aexit__` returns a bool, which type checkers read as "may swallow")."""

    def __init__(self, inner: PostgresTransaction) -> None:
        self._inner = inner

    async def __aenter__(self) -> asyncpg.Connection:
        entered = await self._inner.__aenter__()
        return entered.connection

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._inner.__aexit__(exc_type, exc, tb)


def database_name(url: str) -> str:
    """The database a URL points at (its path), or `postgres` when none is given."""
    return urlsplit(url).path.lstrip("/") or "postgres"


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


async def ensure_database(url: str) -> bool:
    """Create the URL's database on its server if missing; True when it was created."""
    name = database_name(url)
    conn = await asyncpg.connect(with_database(url, "postgres"), timeout=10)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        await conn.execute(f'CREATE DATABASE "{_identifier(name)}"')
        return True
    finally:
        await conn.close()


async def drop_database(url: str) -> None:
    """Drop the URL's database (tests only: they drop only what they created)."""
    conn = await asyncpg.connect(with_database(url, "postgres"), timeout=10)
    try:
        await conn.execute(
            f'DROP DATABASE IF EXISTS "{_identifier(database_name(url))}" WITH (FORCE)'
        )
    finally:
        await conn.close()


def _identifier(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"unsafe database name: {name!r}")
    return name
