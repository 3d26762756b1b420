"""The database kit on several hosts: replica reads with a lag bound, the primary as fallback,
and pools that prepare no named statements (PgBouncer in transaction mode)."""

import struct
import time
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
import pytest

from hub.kit.db import (
    Database,
    PoolOptions,
    ReplicaReads,
    bytes_column,
    float4_values,
    joined_column,
    literal_column,
    with_database,
)
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


def _float4_midpoint() -> float:
    """A double exactly halfway between two neighbouring float4s (0.1's and the next)."""
    low = struct.unpack("<I", struct.pack("<f", 0.1))[0]
    below, above = (struct.unpack("<f", struct.pack("<I", bits))[0] for bits in (low, low + 1))
    return (below + above) / 2


@pytest.mark.parametrize(
    ("values", "sql_type"),
    [
        ([0.1, 0.30000000000000004, 1 / 3, 0.0, -0.0, 1.0, 5e-324, 1e300], "float8"),
        ([0, 1, -7, 2**31 - 1], "int"),
        ([0, 2**62, -(2**62)], "bigint"),
        ([], "float8"),
        ([], "int"),
    ],
    ids=["float8", "int", "bigint", "empty-float8", "empty-int"],
)
async def test_a_literal_column_reads_back_as_the_array_sent(
    database_url: str, values: list[float], sql_type: str
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        read = await conn.fetchval(f"SELECT $1::text::{sql_type}[]", literal_column(values))
        binary = await conn.fetchval(f"SELECT $1::{sql_type}[]", values)
    finally:
        await conn.close()
    assert read == binary == values
    assert [str(v) for v in read] == [str(v) for v in values]  # -0.0 stays -0.0


async def test_float4_values_round_as_the_binary_encoding_did(database_url: str) -> None:
    # A decimal read as float4 by PostgreSQL differs from the double's rounding exactly
    # halfway between two float4s, and fails where the double rounds to 0.
    values = [0.1, 0.9, 1 / 3, 1.0, 0.0, 1e-40, 1e-50, _float4_midpoint()]
    conn = await asyncpg.connect(database_url)
    try:
        read = await conn.fetchval("SELECT $1::text::real[]", literal_column(float4_values(values)))
        binary = await conn.fetchval("SELECT $1::real[]", values)
        every = await conn.fetchval(
            """SELECT count(*) FILTER (WHERE (t::float8)::real <> t::real)
               FROM (SELECT (i / 10000.0)::float8::text AS t FROM generate_series(0, 10000) i) s"""
        )
    finally:
        await conn.close()
    assert read == binary
    assert every == 0  # 4-decimal values: even unrounded, the text gives the same float4


@pytest.mark.parametrize("value", [float("nan"), float("inf"), None])
def test_a_literal_column_refuses_what_json_writes_as_null(value: float | None) -> None:
    with pytest.raises(ValueError, match="literal column"):
        literal_column([0.5, value])  # type: ignore[list-item]


@pytest.mark.parametrize(
    "values", [[b"ab", b"", b"\x00\xff;", b"c"], [b""], []], ids=["several", "one-empty", "none"]
)
async def test_a_bytes_column_cuts_back_into_the_values_sent(
    database_url: str, values: list[bytes]
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        read = await conn.fetch(
            """SELECT substring($1::bytea FROM b.at FOR b.length) AS value
               FROM unnest($2::text::int[], $3::text::int[]) WITH ORDINALITY
                    AS b(at, length, n)
               ORDER BY b.n""",
            *bytes_column(values),
        )
    finally:
        await conn.close()
    assert [bytes(r["value"]) for r in read] == values


def test_a_joined_column_of_no_values_is_empty_and_a_separator_in_one_is_refused() -> None:
    assert joined_column([]) == ""
    with pytest.raises(ValueError, match="separator"):
        joined_column(["a;b", "c"])
