"""The audit appender on real PostgreSQL (ADR 0025): concurrent appends share INSERTs and all
commit, seal and verify; a refused entry fails only its caller; a full queue pushes back;
closing writes what is queued; nothing is acknowledged before its INSERT committed; its
metrics follow what happened."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
import msgspec
import pytest
from prometheus_client import CollectorRegistry

from hub.audit import (
    AppenderOptions,
    AuditAppender,
    AuditBusyError,
    AuditClosedError,
    AuditEntry,
    AuditEntryRejectedError,
    AuditWriteError,
    public_key_in,
    verify_log,
)
from hub.audit.metrics import REFUSALS, AuditMetrics
from hub.runtime import Services
from hub.settings import Settings
from tests.hub.audit.builders import sealer

pytestmark = pytest.mark.db


def entry(i: int, *, target: str | None = None) -> AuditEntry:
    return AuditEntry(actor="test", action="thing.view", target=target or f"t:{i}", detail={"i": i})


class Metrics:
    """The appender's collectors on a registry of their own, read back by name."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.collectors = AuditMetrics(self.registry)

    def value(self, name: str, **labels: str) -> float:
        found = self.registry.get_sample_value(name, labels)
        return 0.0 if found is None else found

    def refused(self) -> dict[str, float]:
        return {
            o: self.value("hub_audit_append_refused_total", outcome=o)
            for o in REFUSALS
            if self.value("hub_audit_append_refused_total", outcome=o)
        }


@asynccontextmanager
async def appender(
    services: Services, metrics: Metrics | None = None, **options: float
) -> AsyncIterator[AuditAppender]:
    built = AuditAppender(
        services.db,
        options=AppenderOptions(**options),  # type: ignore[arg-type]
        metrics=(metrics or Metrics()).collectors,
    )
    try:
        yield built
    finally:
        await built.aclose()


class Block:
    """A lock every INSERT into audit_log waits for, held by another connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self._tx = conn.transaction()

    async def hold(self) -> None:
        await self._tx.start()
        await self.conn.execute("LOCK TABLE audit_log IN SHARE MODE")

    async def release(self) -> None:
        await self._tx.rollback()

    async def waiting_inserts(self) -> list[int]:
        """Backends of INSERTs into audit_log under way (waiting for the lock). This
        connection is inside the transaction that holds the lock, and PostgreSQL keeps one
        snapshot of pg_stat_activity per transaction: without clearing it, every poll would
        see what the first one saw, and an INSERT later than the first poll (a slow machine)
        would never show."""
        await self.conn.execute("SELECT pg_stat_clear_snapshot()")
        rows = await self.conn.fetch(
            """SELECT pid FROM pg_stat_activity WHERE datname = current_database()
               AND state = 'active' AND query LIKE 'INSERT INTO audit_log%'
               AND pid <> pg_backend_pid()"""
        )
        return [r["pid"] for r in rows]

    async def until_an_insert_waits(self) -> None:
        for _ in range(1_000):  # 10 s: a loaded machine may be slow to send it
            if await self.waiting_inserts():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("no INSERT reached the database")


@asynccontextmanager
async def inserts_blocked(settings: Settings) -> AsyncIterator[Block]:
    """Hold the lock until `release()` or the end of the block."""
    conn = await asyncpg.connect(settings.database_url)
    block = Block(conn)
    try:
        await block.hold()
        yield block
    finally:
        await conn.close()


async def count(services: Services) -> int:
    return int(await services.db.pool.fetchval("SELECT count(*) FROM audit_log"))


async def test_concurrent_appends_share_inserts_and_all_commit_seal_and_verify(
    services: Services,
) -> None:
    async with appender(services, batch=64, flushes=2, linger_seconds=0.002) as audit:
        seqs = await asyncio.gather(*(audit.append(entry(i)) for i in range(1_000)))
    assert len(set(seqs)) == 1_000
    rows = await services.db.pool.fetch("SELECT seq, target FROM audit_log ORDER BY seq")
    assert sorted(seqs) == [r["seq"] for r in rows]
    by_seq = {r["seq"]: r["target"] for r in rows}
    assert [by_seq[s] for s in seqs] == [f"t:{i}" for i in range(1_000)]  # each got its own
    report = await sealer(services).run(force_checkpoint=True)
    assert report.sealed == 1_000
    verified = await verify_log(services.db.pool, key=public_key_in(services.settings.secrets_dir))
    assert verified.ok, verified.problem
    assert verified.entries == 1_000


async def test_entries_go_out_in_few_statements(services: Services) -> None:
    metrics = Metrics()
    async with appender(services, metrics, batch=100, flushes=1, linger_seconds=0.005) as audit:
        await asyncio.gather(*(audit.append(entry(i)) for i in range(500)))
        inserts = audit.inserts
    # One INSERT is one transaction: the rows' xmin tells how many statements wrote them.
    xmins = await services.db.pool.fetchval("SELECT count(DISTINCT xmin::text) FROM audit_log")
    assert 5 <= xmins <= 20, f"{xmins} transactions for 500 entries (at most 100 per INSERT)"
    # The metrics tell the same story: one observation per INSERT, every entry counted once.
    assert metrics.value("hub_audit_append_batch_entries_count") == inserts == xmins
    assert metrics.value("hub_audit_append_batch_entries_sum") == 500
    assert metrics.value("hub_audit_append_flush_seconds_count") == inserts
    assert metrics.value("hub_audit_append_flush_seconds_sum") > 0
    assert metrics.value("hub_audit_appended_total") == 500
    assert metrics.value("hub_audit_append_queued") == 0
    assert metrics.refused() == {}


async def test_a_refused_entry_fails_only_its_caller(services: Services) -> None:
    metrics = Metrics()
    async with appender(services, metrics, batch=50, flushes=1, linger_seconds=0.01) as audit:
        calls = [audit.append(entry(i)) for i in range(40)]
        calls.insert(17, audit.append(entry(99, target="bad\x00target")))  # PostgreSQL: no NUL
        results = await asyncio.gather(*calls, return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(failed) == 1
    assert isinstance(results[17], AuditEntryRejectedError)
    assert isinstance(results[17].__cause__, asyncpg.DataError | asyncpg.PostgresError)
    assert await count(services) == 40
    targets = {r["target"] for r in await services.db.pool.fetch("SELECT target FROM audit_log")}
    assert targets == {f"t:{i}" for i in range(40)}
    assert metrics.refused() == {"rejected": 1}
    assert metrics.value("hub_audit_appended_total") == 40


async def test_a_full_queue_pushes_back_and_then_drains(
    services: Services, settings: Settings
) -> None:
    metrics = Metrics()
    async with (
        appender(services, metrics, batch=2, flushes=1, queue=4, wait_seconds=0.2) as audit,
        inserts_blocked(settings) as lock,
    ):
        assert await lock.waiting_inserts() == []  # and later polls must still see one come
        first = asyncio.create_task(audit.append(entry(0)))  # goes out, waits for the lock
        await lock.until_an_insert_waits()
        queued = [asyncio.create_task(audit.append(entry(i))) for i in range(1, 5)]
        await asyncio.sleep(0.05)
        assert audit.queued == 4
        assert metrics.value("hub_audit_append_queued") == 4
        with pytest.raises(AuditBusyError) as refused:
            await audit.append(entry(5))
        assert refused.value.status == 503
        assert metrics.refused() == {"busy": 1}
        assert not first.done()
        assert not any(t.done() for t in queued)
        await lock.release()
        done = await asyncio.gather(first, *queued)
    assert len(set(done)) == 5
    assert await count(services) == 5
    assert metrics.value("hub_audit_append_queued") == 0
    assert metrics.value("hub_audit_appended_total") == 5


async def test_closing_writes_what_is_queued_and_refuses_more(
    services: Services, settings: Settings
) -> None:
    metrics = Metrics()
    audit = AuditAppender(
        services.db, options=AppenderOptions(batch=3, flushes=1), metrics=metrics.collectors
    )
    async with inserts_blocked(settings) as lock:
        calls = [asyncio.create_task(audit.append(entry(i))) for i in range(10)]
        await lock.until_an_insert_waits()
        closing = asyncio.create_task(audit.aclose())
        await asyncio.sleep(0.05)
        assert not closing.done()
        with pytest.raises(AuditClosedError):
            await audit.append(entry(11))
        await lock.release()
        await closing
    assert all(t.done() and not t.exception() for t in calls)
    assert await count(services) == 10
    assert metrics.refused() == {"closed": 1}
    assert metrics.value("hub_audit_append_queued") == 0


async def test_no_caller_hears_success_before_the_commit(
    services: Services, settings: Settings
) -> None:
    metrics = Metrics()
    async with (
        appender(services, metrics, batch=10, flushes=1) as audit,
        inserts_blocked(settings) as lock,
    ):
        calls = [asyncio.create_task(audit.append(entry(i))) for i in range(3)]
        await lock.until_an_insert_waits()
        await asyncio.sleep(0.1)
        assert not any(t.done() for t in calls)  # the INSERT has not committed
        for pid in await lock.waiting_inserts():
            await lock.conn.fetchval("SELECT pg_terminate_backend($1)", pid)
        results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, AuditWriteError) for r in results), results
    assert all(r.__cause__ is not None for r in results if isinstance(r, BaseException))
    assert await count(services) == 0
    assert metrics.refused() == {"write_failed": 3}
    assert metrics.value("hub_audit_append_flush_seconds_count") >= 1  # failed INSERTs too
    assert metrics.value("hub_audit_append_batch_entries_count") == 0  # none committed
    # The appender goes on with a fresh connection.
    async with appender(services) as audit:
        assert await audit.append(entry(9)) > 0


async def test_an_entry_is_dated_when_it_was_appended(services: Services) -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    async with appender(services) as audit:
        seq = await audit.append(entry(1), at=at)
        seqs = await audit.append_many([entry(2), entry(3)])
    assert seqs == sorted(seqs)
    assert await services.db.pool.fetchval("SELECT at FROM audit_log WHERE seq = $1", seq) == at


def test_options_follow_the_settings(settings: Settings) -> None:
    tuned = msgspec.structs.replace(
        settings, audit_append_batch=64, audit_append_linger_ms=2.5, audit_append_queue=99
    )
    options = AppenderOptions.from_settings(tuned)
    assert (options.batch, options.linger_seconds, options.queue) == (64, 0.0025, 99)
