"""The decision log on a real PostgreSQL: batched writes, flush on stop, back-pressure that
never drops, and records that survive a database outage."""

import asyncio
import contextlib
import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
import pytest
from prometheus_client import CollectorRegistry

from hub.kit.db import Database
from hub.policy.decision_log import DecisionLog
from hub.policy.errors import DecisionLogFullError
from hub.policy.metrics import PolicyMetrics
from hub.policy.schemas import DecisionRecord
from hub.policy.service import new_decision_id
from hub.runtime import Services
from hub.settings import Settings

pytestmark = [pytest.mark.db, pytest.mark.commits]

AT = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)


def decision(i: int, **changes: Any) -> DecisionRecord:
    record = DecisionRecord(
        decision_id=new_decision_id(),
        entrypoint="hub/release/decision",
        revision="rev-1",
        at=AT,
        latency_us=120 + i,
        input={"i": i, "record": {"plate_text": "**masked**"}},
        result={"allow": True, "reason": "test"},
    )
    return msgspec.structs.replace(record, **changes)


def decision_log(db: Database, **options: Any) -> tuple[DecisionLog, CollectorRegistry]:
    registry = CollectorRegistry()
    settings: dict[str, Any] = {
        "capacity": 100,
        "flush_interval_ms": 20,
        "backoff_s": (0.05, 0.2),
        "write_timeout_s": 2.0,
        "metrics": PolicyMetrics(registry),
    }
    return DecisionLog(db, **(settings | options)), registry


async def stored(settings: Settings) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return await conn.fetch(
            "SELECT decision_id, at, entrypoint, revision, latency_us, input::text AS input,"
            " result::text AS result, error FROM policy_decisions ORDER BY latency_us"
        )
    finally:
        await conn.close()


def sample(registry: CollectorRegistry, name: str) -> float:
    return registry.get_sample_value(name) or 0.0


async def test_records_land_in_policy_decisions(services: Services, settings: Settings) -> None:
    log, registry = decision_log(services.db)
    await log.start()
    records = [decision(i) for i in range(3)] + [decision(3, error="evaluation: boom")]
    for record in records:
        await log.record(record)
    await asyncio.wait_for(log.wait_flushed(), 5)
    await log.stop()
    rows = await stored(settings)
    assert [r["decision_id"] for r in rows] == [r.decision_id for r in records]
    first = rows[0]
    assert (first["at"], first["entrypoint"], first["revision"], first["latency_us"]) == (
        AT,
        "hub/release/decision",
        "rev-1",
        120,
    )
    assert msgspec.json.decode(first["input"]) == records[0].input
    assert msgspec.json.decode(first["result"]) == records[0].result
    assert [r["error"] for r in rows] == [None, None, None, "evaluation: boom"]
    assert sample(registry, "hub_policy_decision_log_written_total") == 4


async def test_stop_writes_everything_still_buffered(
    services: Services, settings: Settings
) -> None:
    log, _ = decision_log(services.db, flush_interval_ms=60_000, batch_size=1000)
    await log.start()
    for i in range(50):
        await log.record(decision(i))
    await asyncio.sleep(0.05)
    assert await stored(settings) == []
    await log.stop()
    assert len(await stored(settings)) == 50
    assert len(log) == 0


async def test_a_full_batch_is_written_without_waiting_for_the_interval(
    services: Services, settings: Settings
) -> None:
    log, _ = decision_log(services.db, flush_interval_ms=60_000, batch_size=10)
    await log.start()
    for i in range(25):
        await log.record(decision(i))
    for _ in range(100):
        if len(await stored(settings)) == 20:
            break
        await asyncio.sleep(0.02)
    assert len(await stored(settings)) == 20
    assert len(log) == 5
    await log.stop()
    assert len(await stored(settings)) == 25


async def test_a_full_buffer_makes_callers_wait_then_refuses(
    services: Services, settings: Settings
) -> None:
    log, registry = decision_log(services.db, capacity=3, put_timeout_s=0.2)
    for i in range(3):
        await log.record(decision(i))  # not started: nothing drains the buffer
    started = asyncio.get_running_loop().time()
    with pytest.raises(DecisionLogFullError, match="buffer full"):
        await log.record(decision(3))
    assert asyncio.get_running_loop().time() - started >= 0.19
    assert sample(registry, "hub_policy_decision_log_full_total") == 1
    assert sample(registry, "hub_policy_decision_log_refused_total") == 1
    assert len(log) == 3
    await log.stop()
    assert len(await stored(settings)) == 3  # what was taken was kept


async def test_a_waiting_caller_gets_in_once_the_writer_makes_room(
    services: Services, settings: Settings
) -> None:
    log, registry = decision_log(services.db, capacity=3, put_timeout_s=5)
    for i in range(3):
        await log.record(decision(i))
    waiting = asyncio.create_task(log.record(decision(3)))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await log.start()
    await asyncio.wait_for(waiting, 5)
    await asyncio.wait_for(log.wait_flushed(), 5)
    await log.stop()
    assert len(await stored(settings)) == 4
    assert sample(registry, "hub_policy_decision_log_refused_total") == 0


async def test_records_survive_a_database_outage(settings: Settings) -> None:
    proxy = SwitchableProxy(settings.database_url)
    db = Database(proxy.start(), min_size=1, max_size=2)
    await db.start()
    log, registry = decision_log(db)
    await log.start()
    try:
        for i in range(2):
            await log.record(decision(i))
        await asyncio.wait_for(log.wait_flushed(), 5)
        proxy.down()
        for i in range(2, 7):
            await log.record(decision(i))
        await asyncio.sleep(0.5)
        assert len(log) == 5
        assert len(await stored(settings)) == 2
        assert sample(registry, "hub_policy_decision_log_flush_failures_total") >= 1
        proxy.up()
        await asyncio.wait_for(log.wait_flushed(), 10)
        assert [r["latency_us"] - 120 for r in await stored(settings)] == list(range(7))
    finally:
        await log.stop()
        await db.stop()
        proxy.close()


async def test_stop_gives_up_after_the_drain_timeout_and_counts_the_loss(
    settings: Settings,
) -> None:
    proxy = SwitchableProxy(settings.database_url)
    db = Database(proxy.start(), min_size=0, max_size=1)
    await db.start()
    proxy.down()
    log, registry = decision_log(db, drain_timeout_s=0.5)
    await log.start()
    try:
        for i in range(4):
            await log.record(decision(i))
        await asyncio.wait_for(log.stop(), 5)
        assert sample(registry, "hub_policy_decision_log_lost_total") == 4
        with pytest.raises(DecisionLogFullError, match="stopped"):
            await log.record(decision(9))
    finally:
        await db.stop()
        proxy.close()


async def test_one_record_postgres_refuses_does_not_block_the_others(
    services: Services, settings: Settings
) -> None:
    log, registry = decision_log(services.db)
    await log.start()
    records = [
        decision(0),
        decision(1, decision_id=""),  # violates the CHECK: cannot be stored at all
        decision(2, input={"plate_text": "AB\x00CD"}, error="nul\x00byte"),
    ]
    for record in records:
        await log.record(record)
    await asyncio.wait_for(log.wait_flushed(), 5)
    await log.stop()
    rows = await stored(settings)
    assert [r["latency_us"] for r in rows] == [120, 122]
    assert msgspec.json.decode(rows[1]["input"]) == {"plate_text": "AB\ufffdCD"}
    assert rows[1]["error"] == "nul\ufffdbyte"
    assert sample(registry, "hub_policy_decision_log_unloggable_total") == 1
    assert sample(registry, "hub_policy_decision_log_lost_total") == 1


class SwitchableProxy:
    """A loopback TCP proxy to PostgreSQL that can be taken down and brought back up.

    It runs its own event loop in a thread: Piccolo's engine connects synchronously (on
    another loop) while it is built, which would deadlock a proxy on the test's loop."""

    def __init__(self, database_url: str) -> None:
        self.url = urlsplit(database_url)
        self.is_up = True
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    def start(self) -> str:
        """Listen on a free port; returns the database URL that goes through the proxy."""
        self.thread.start()
        self.server = self._call(asyncio.start_server(self._serve, "127.0.0.1", 0))
        port = self.server.sockets[0].getsockname()[1]
        userinfo = self.url.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"
        return urlunsplit(self.url._replace(netloc=netloc))

    def down(self) -> None:
        """Refuse new connections and cut the open ones."""
        self.is_up = False
        self._call(self._cut())

    def up(self) -> None:
        """Pass connections through again."""
        self.is_up = True

    def close(self) -> None:
        self.down()
        self._call(self._stop_server())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(5)

    async def _cut(self) -> None:
        writers, self.writers = list(self.writers), set()
        for writer in writers:
            writer.close()
        for writer in writers:
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _stop_server(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.is_up:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            return
        target = (self.url.hostname or "127.0.0.1", self.url.port or 5432)
        up_reader, up_writer = await asyncio.open_connection(*target)
        self.writers |= {writer, up_writer}
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()
