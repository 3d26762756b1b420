"""PostgreSQL access: one Piccolo engine (and its asyncpg pool) per process.

Use cases open transactions with `Database.transaction()` and pass the connection to the
repository; hot paths run plain SQL on that asyncpg connection, simple CRUD uses Piccolo.
Writes always go to the primary (a multi-host URL with `target_session_attrs=read-write`
follows a promotion); reads that tolerate staleness may use `Database.reader()`, which picks
a streaming replica while its replay lag stays under a bound (docs/adr/0016-several-hosts.md).
"""

import array
import asyncio
import contextlib
import functools
import itertools
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
from piccolo.engine.postgres import PostgresEngine, PostgresTransaction
from piccolo.table import Table

from hub.kit.errors import UnavailableError
from hub.settings import Settings

log = logging.getLogger(__name__)

# Replay lag of a streaming replica in seconds; a replica that is not streaming (primary
# gone, receiver stopped) answers NULL, i.e. "unknown", which never counts as fresh. A
# promoted replica is no longer in recovery: it is a primary and has no lag.
_REPLICA_LAG_SQL = """
SELECT CASE
    WHEN NOT pg_is_in_recovery() THEN 0.0
    WHEN NOT EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') THEN NULL
    WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0.0
    ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8
END
"""


# Statements that can leave state in the session once their transaction has ended: session
# advisory locks, LISTEN, session SET and set_config, cursors, PREPARE, temporary tables. Far
# too wide on purpose (any `set_config`, any DECLARE): a false match only costs a reset.
_SESSION_STATE = re.compile(
    r"advisory_lock|\bLISTEN\b|(\A|;)\s*SET\s+(?!LOCAL\b|TRANSACTION\b|CONSTRAINTS\b)"
    r"|set_config|\bDECLARE\b|(\A|;)\s*PREPARE\b|\bTEMP(ORARY)?\b",
    re.IGNORECASE,
)


def joined_column(items: list[str]) -> str:
    """One text parameter for a text column of many rows, split in SQL with
    `string_to_array($n::text, ';')`: asyncpg checks every element of an array parameter
    against three ABCs in Python (~0.1 µs each), a string not at all. Only for values that
    cannot hold ";" (the contract's patterns keep it out of camera ids, labels and digests);
    checked all the same, at C speed: a stray ";" would shift every later row's value."""
    joined = ";".join(items)
    if joined.count(";") != max(len(items) - 1, 0):  # no items: "", an empty array
        raise ValueError("a value of a joined column holds its separator")
    return joined


def literal_column(items: Sequence[float]) -> str:
    """One text parameter for a numeric column of many rows, read in SQL with
    `$n::text::float8[]` (or `::real[]`, `::int[]`, `::bigint[]`): for the reason of
    `joined_column`, written by msgspec in C, a JSON list whose brackets become an array
    literal's braces (`[]` gives `{}`). Exact for float8: msgspec writes the shortest text
    that reads back as the same double; for a `real` column round the values first
    (`float4_values`). Refuses None, NaN and the infinities (msgspec writes them as null),
    which no hub column takes from a list.

    Only where PostgreSQL's parse costs no more than the driver's encoding (figures in ADR
    0035): not for uuids, whose quoted text it parses at ~1 µs each, nor timestamps."""
    encoded = msgspec.json.encode(items)
    if b"null" in encoded:  # a number's text cannot hold it
        raise ValueError("a value of a literal column is None or not finite")
    return "{" + encoded[1:-1].decode() + "}"


def float4_values(items: Sequence[float]) -> list[float]:
    """The values rounded to float4 (as doubles) by C's cast, as asyncpg's binary encoding
    rounded them, for a `real` column sent as a `literal_column`: the text then holds a float4
    that reads back as is. PostgreSQL rounding the decimal itself agrees for every 4-decimal
    value in [0, 1] (checked in tests/hub/kit/test_db.py), but not where the double lies
    exactly halfway between two float4s, and it refuses a value that underflows to 0 (which
    the cast stores as 0)."""
    return array.array("f", items).tolist()


def bytes_column(items: Sequence[bytes]) -> tuple[bytes, str, str]:
    """Three parameters for a bytea column of many rows: the values joined, and each value's
    start (1-based, as `substring` counts) and length as `literal_column`s. SQL unnests the
    two with the other columns and cuts each row's value with `substring($n::bytea FROM at
    FOR length)`: asyncpg checks every element of a bytea[] parameter against two ABCs, and
    its encoding of a 1 kB element cost ~4 µs, PostgreSQL's cut less than reading the array."""
    lengths = list(map(len, items))
    starts = list(itertools.accumulate(lengths, initial=1))
    starts.pop()  # where a value after the last one would start
    return b"".join(items), literal_column(starts), literal_column(lengths)


@functools.lru_cache(maxsize=4096)
def leaves_session_state(query: str) -> bool:
    """Whether `query` may leave something in the session past its transaction (cached: the
    hub sends the same few hundred statement texts over and over)."""
    return _SESSION_STATE.search(query) is not None


class SessionConnection(asyncpg.Connection):  # type: ignore[misc]  # asyncpg is untyped
    """An asyncpg connection that notes when a statement may have left session state behind,
    so that the pool resets only those connections (`reset_session`)."""

    __slots__ = ("session_dirty",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session_dirty = False

    async def execute(self, query: str, *args: Any, **kwargs: Any) -> str:
        """`Connection.execute`, noting session state (without arguments it is the simple
        query protocol, which does not pass `_get_statement`)."""
        if not self.session_dirty and leaves_session_state(query):
            self.session_dirty = True
        result: str = await super().execute(query, *args, **kwargs)
        return result

    async def _get_statement(self, query: str, *args: Any, **kwargs: Any) -> Any:
        # Every extended-protocol statement (fetch*, execute with arguments, executemany,
        # prepare, cursors) is prepared or found in the cache here. Noted before it runs, so a
        # statement cancelled while waiting (a lock) still counts.
        if not self.session_dirty and leaves_session_state(query):
            self.session_dirty = True
        return await super()._get_statement(query, *args, **kwargs)


async def reset_session(conn: asyncpg.Connection) -> None:
    """The pool's reset: asyncpg has already rolled back any open transaction; the reset
    query (`pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`) runs only on a
    connection that may have left session state behind.

    asyncpg's default sends it on every release: one more round trip per pooled use, about
    0.1 ms of PostgreSQL CPU and as much of the client's, four times per ingest batch and on
    every feed page, for statements that leave nothing past their transaction (ADR 0021)."""
    if isinstance(conn, SessionConnection) and not conn.session_dirty:
        return
    query = conn.get_reset_query()
    if query:
        await conn.execute(query)
    if isinstance(conn, SessionConnection):
        conn.session_dirty = False


class PoolOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How the asyncpg pools connect: sizes, connect timeout, and the prepared-statement
    cache (0 behind PgBouncer in transaction mode, where a named statement prepared on one
    server connection is missing on the next)."""

    min_size: int = 2
    max_size: int = 10
    statement_cache_size: int = 100
    connect_timeout: float = 10.0


class Database:
    """Owns the Piccolo engine; tables are bound to it when the pool starts."""

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        options: PoolOptions | None = None,
        replica: "ReplicaReads | None" = None,
    ) -> None:
        self.url = url
        self.options = options or PoolOptions(min_size=min_size, max_size=max_size)
        self.engine = PostgresEngine(
            config={
                "dsn": url,
                "statement_cache_size": self.options.statement_cache_size,
                "timeout": self.options.connect_timeout,
            }
        )
        self.replica = replica

    @classmethod
    def from_settings(cls, settings: Settings) -> "Database":
        """The primary (HUB_DATABASE_URL) and, when HUB_DATABASE_REPLICA_URL is set, the
        replica that `reader()` may use."""
        options = PoolOptions(
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            statement_cache_size=settings.db_statement_cache_size,
            connect_timeout=settings.db_connect_timeout_seconds,
        )
        replica = None
        if settings.database_replica_url:
            replica = ReplicaReads(
                settings.database_replica_url,
                options=options,
                max_lag_seconds=settings.database_replica_max_lag_seconds,
            )
        return cls(settings.database_url, options=options, replica=replica)

    async def start(self, tables: Sequence[type[Table]] = ()) -> None:
        """Open the pool and point the given Piccolo tables at this engine (a replica that
        does not answer yet is not an error: reads use the primary until it does)."""
        for table in tables:
            table._meta.db = self.engine
        try:
            await self.engine.start_connection_pool(
                min_size=self.options.min_size,
                max_size=self.options.max_size,
                connection_class=SessionConnection,
                reset=reset_session,
            )
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            raise UnavailableError(f"PostgreSQL is not reachable: {type(exc).__name__}") from exc

    async def stop(self) -> None:
        """Close the pools (idempotent). A pool that does not close in time (asyncpg waits
        for every connection to come back, and one held by a cancelled task may never) is
        terminated, so a stopping process always finishes stopping."""
        if self.replica is not None:
            await self.replica.stop()
        pool = self.engine.pool
        if pool is None:
            return
        try:
            async with asyncio.timeout(self.options.connect_timeout):
                await self.engine.close_connection_pool()
        except TimeoutError:
            pool.terminate()
            self.engine.pool = None

    @contextlib.asynccontextmanager
    async def reader(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection for a read that tolerates staleness (feeds, console, audit search,
        reports): the replica while its lag is within bound, otherwise the primary. Never
        use it to read what the caller has just written."""
        replica = self.replica
        conn = await replica.acquire() if replica is not None else None
        if replica is None or conn is None:
            async with self.pool.acquire() as primary:
                yield primary
            return
        try:
            yield conn
        except _LOST as exc:
            replica.lost(exc)  # the next read checks the replica again before using it
            raise
        finally:
            await replica.release(conn)

    async def replica_fresh(self) -> bool:
        """True when `reader()` would pick the replica now: one is configured and its lag was
        within bound at the last check (callers with a cheaper primary path ask first)."""
        return self.replica is not None and await self.replica.fresh()

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[asyncpg.Connection]:
        """`reader()` inside one read-only repeatable-read transaction, for reads that must
        agree with each other (a list and its counts, a row and its attempts): one state of
        whichever server answered, never a mix of a replica's and the primary's."""
        async with (
            self.reader() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            yield conn

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


# What a vanished server looks like to asyncpg.
_LOST = (OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)


class ReplicaReads:
    """A pool on a streaming replica and a cached check of its replay lag: reads go there
    only while the lag, checked at most every `check_seconds`, is at most `max_lag_seconds`;
    a replica that is down, not streaming or behind sends reads to the primary."""

    def __init__(
        self,
        url: str,
        *,
        options: PoolOptions,
        max_lag_seconds: float,
        check_seconds: float = 1.0,
        command_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.options = options
        # A replica cut off without a reset would hold a read until TCP gives up (minutes).
        self.command_timeout = command_timeout
        self.max_lag_seconds = max_lag_seconds
        self.check_seconds = check_seconds
        self._clock = clock
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()
        self._checked_at = -float("inf")
        self._fresh = False
        self.last_lag: float | None = None

    async def acquire(self) -> asyncpg.Connection | None:
        """A replica connection, or None when reads should go to the primary."""
        if not await self.fresh():
            return None
        if self._pool is None:  # closed meanwhile
            return None
        try:
            conn: asyncpg.Connection = await self._pool.acquire(
                timeout=self.options.connect_timeout
            )
        except (*_LOST, asyncpg.PostgresError) as exc:
            self._mark(lag=None, reason=type(exc).__name__)
            return None
        return conn

    async def release(self, conn: asyncpg.Connection) -> None:
        """Give a connection from `acquire()` back to the replica pool."""
        if self._pool is None:
            conn.terminate()
            return
        try:
            await self._pool.release(conn, timeout=self.options.connect_timeout)
        except _LOST:
            conn.terminate()

    async def fresh(self) -> bool:
        """True when the replica's lag was within bound at the last check (re-checked when
        that check is older than `check_seconds`)."""
        if self._clock() - self._checked_at < self.check_seconds:
            return self._fresh
        async with self._lock:
            if self._clock() - self._checked_at >= self.check_seconds:
                await self._check()
        return self._fresh

    async def _check(self) -> None:
        try:
            async with asyncio.timeout(self.options.connect_timeout * 2):
                lag = await self._lag()
        except (*_LOST, asyncpg.PostgresError) as exc:
            self._drop_pool()  # its connections may hang on a host that vanished
            self._mark(lag=None, reason=type(exc).__name__)
            return
        self._mark(lag=lag, reason="not streaming" if lag is None else "lag")

    async def _lag(self) -> float | None:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=0,
                max_size=self.options.max_size,
                statement_cache_size=self.options.statement_cache_size,
                timeout=self.options.connect_timeout,
                command_timeout=self.command_timeout,
            )
        lag: float | None = await self._pool.fetchval(
            _REPLICA_LAG_SQL, timeout=self.options.connect_timeout
        )
        return lag

    def _drop_pool(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.terminate()

    def lost(self, exc: BaseException) -> None:
        """A read on the replica failed as if it vanished: check it before the next read."""
        log.warning("replica read failed (%s); checking the replica again", type(exc).__name__)
        self._checked_at = -float("inf")

    def _mark(self, *, lag: float | None, reason: str) -> None:
        fresh = lag is not None and lag <= self.max_lag_seconds
        if fresh != self._fresh:
            log.warning(
                "replica reads %s (%s, lag %s s)",
                "resumed" if fresh else "moved to the primary",
                reason,
                "unknown" if lag is None else f"{lag:.1f}",
            )
        self._fresh, self.last_lag, self._checked_at = fresh, lag, self._clock()

    async def stop(self) -> None:
        """Close the replica pool (idempotent); terminated if it does not close in time."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                async with asyncio.timeout(self.options.connect_timeout):
                    await pool.close()
            except TimeoutError:
                pool.terminate()


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


async def connect_once(url: str) -> asyncpg.Connection:
    """A connection for a few one-off statements (a command, a migration step). It prepares
    no named statement: there is nothing to reuse, and behind PgBouncer in transaction mode
    a named one would collide with another client's on a shared server connection."""
    conn: asyncpg.Connection = await asyncpg.connect(url, timeout=10, statement_cache_size=0)
    return conn


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
    conn = await connect_once(with_database(url, "postgres"))
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
    conn = await connect_once(with_database(url, "postgres"))
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
