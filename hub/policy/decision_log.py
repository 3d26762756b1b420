"""The decision log: every policy decision is written to `policy_decisions`, off the request
path and never silently dropped.

Records wait in a bounded in-memory buffer; a background task writes them in batches (every
`flush_interval_ms`, or as soon as a batch is full) with one multi-row insert. When PostgreSQL
is down the records stay buffered and the task retries with backoff. When the buffer is full,
`record()` waits (bounded); if there is still no room it raises `DecisionLogFullError` and the
caller fails the decision closed: a decision that cannot be recorded does not take effect.
Records are lost only when the process stops while the database stays down past the drain
timeout, and then they are counted and logged.
"""

import asyncio
import contextlib
from collections import deque
from typing import Any

import asyncpg
import msgspec
import structlog

from hub.kit.db import Database
from hub.policy.errors import DecisionLogFullError
from hub.policy.metrics import PolicyMetrics, default_metrics
from hub.policy.schemas import DecisionRecord
from hub.settings import Settings

log = structlog.get_logger("hub.policy.decision_log")

_INT4_MAX = 2**31 - 1
# Idempotent: a batch retried after a lost acknowledgement inserts nothing twice.
_INSERT = """
INSERT INTO policy_decisions
    (decision_id, at, entrypoint, revision, latency_us, input, result, error)
SELECT d, a, e, r, l, i::jsonb, o::jsonb, x
FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::int4[],
            $6::text[], $7::text[], $8::text[]) AS t(d, a, e, r, l, i, o, x)
ON CONFLICT (decision_id) DO NOTHING
"""
# PostgreSQL refused the data itself (not the connection): retrying the batch cannot help.
_REFUSED = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)


class DecisionLog:
    """A bounded buffer of decision records and the task that writes them."""

    def __init__(
        self,
        db: Database,
        *,
        capacity: int,
        flush_interval_ms: int,
        batch_size: int = 500,
        put_timeout_s: float = 1.0,
        write_timeout_s: float = 10.0,
        backoff_s: tuple[float, float] = (0.1, 5.0),
        drain_timeout_s: float = 10.0,
        metrics: PolicyMetrics | None = None,
    ) -> None:
        self._db = db
        self._capacity = capacity
        self._interval = flush_interval_ms / 1000
        self._batch_size = batch_size
        self._put_timeout = put_timeout_s
        self._write_timeout = write_timeout_s
        self._backoff = backoff_s
        self._drain_timeout = drain_timeout_s
        self._metrics = metrics or default_metrics()
        self._pending: deque[DecisionRecord] = deque()
        self._inflight: list[DecisionRecord] = []
        self._wake = asyncio.Event()  # a full batch is waiting, or we are stopping
        self._space = asyncio.Event()  # records were written: room in the buffer
        self._empty = asyncio.Event()  # nothing left to write
        self._empty.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False

    @classmethod
    def from_settings(
        cls, db: Database, settings: Settings, *, metrics: PolicyMetrics | None = None
    ) -> "DecisionLog":
        """A log sized and paced by the hub's settings."""
        return cls(
            db,
            capacity=settings.decision_log_buffer,
            flush_interval_ms=settings.decision_log_flush_ms,
            metrics=metrics,
        )

    def __len__(self) -> int:
        """Records not yet written (waiting or being written)."""
        return len(self._pending) + len(self._inflight)

    async def start(self) -> None:
        """Start the background writer."""
        if self._task is None:
            self._closing = self._closed = False
            self._task = asyncio.create_task(self._run(), name="policy-decision-log")

    async def stop(self) -> None:
        """Write everything still buffered, then stop; waits at most the drain timeout."""
        self._closing = True
        self._wake.set()
        task = self._task or asyncio.create_task(self._run())
        try:
            await asyncio.wait_for(asyncio.shield(task), self._drain_timeout)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._give_up()
        self._task = None
        self._closed = True

    async def record(self, record: DecisionRecord) -> None:
        """Buffer one record; waits while the buffer is full, up to `put_timeout_s`.

        Raises `DecisionLogFullError` when there is still no room (or the log is stopped):
        the record was not taken and its decision must not take effect.
        """
        if self._closed or self._closing:
            raise DecisionLogFullError("the decision log is stopped")
        if len(self) >= self._capacity:
            await self._wait_for_space()
        self._pending.append(record)
        self._empty.clear()
        self._metrics.log_buffered.set(len(self))
        if len(self._pending) >= self._batch_size:
            self._wake.set()

    async def wait_flushed(self) -> None:
        """Wait until every record taken so far is written."""
        await self._empty.wait()

    async def _wait_for_space(self) -> None:
        self._metrics.log_full.inc()
        try:
            async with asyncio.timeout(self._put_timeout):
                while len(self) >= self._capacity:
                    self._space.clear()
                    await self._space.wait()
        except TimeoutError:
            self._metrics.log_refused.inc()
            raise DecisionLogFullError(
                f"decision log buffer full ({self._capacity} records) for {self._put_timeout}s"
            ) from None

    async def _run(self) -> None:
        delay = self._backoff[0]
        while not (self._closing and not self._pending):
            if not self._closing:
                await self._wait_for_batch()
            if not self._pending:
                continue
            try:
                await self._flush_batch()
            except Exception as exc:  # any failure: keep the records and try again
                self._metrics.log_flush_failures.inc()
                log.warning(
                    "decision log flush failed; records kept",
                    error_type=type(exc).__name__,
                    buffered=len(self),
                    retry_in_s=delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff[1])
            else:
                delay = self._backoff[0]

    async def _wait_for_batch(self) -> None:
        if len(self._pending) >= self._batch_size:
            return
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._interval)

    async def _flush_batch(self) -> None:
        count = min(self._batch_size, len(self._pending))
        self._inflight = [self._pending.popleft() for _ in range(count)]
        try:
            await self._write(self._inflight)
        except BaseException:
            self._pending.extendleft(reversed(self._inflight))
            raise
        finally:
            self._inflight = []
        self._metrics.log_written.inc(count)
        self._metrics.log_buffered.set(len(self))
        self._space.set()
        if not self:
            self._empty.set()

    async def _write(self, batch: list[DecisionRecord]) -> None:
        async with asyncio.timeout(self._write_timeout), self._db.pool.acquire() as conn:
            try:
                await conn.execute(_INSERT, *_columns(batch))
            except _REFUSED:
                await self._write_one_by_one(conn, batch)

    async def _write_one_by_one(
        self, conn: asyncpg.Connection, batch: list[DecisionRecord]
    ) -> None:
        """Find the record(s) PostgreSQL refuses; store those with input and result withheld,
        so one bad record neither blocks the log nor vanishes unnoticed."""
        for record in batch:
            try:
                await conn.execute(_INSERT, *_columns([record]))
            except _REFUSED as exc:
                self._metrics.log_unloggable.inc()
                log.error(
                    "decision record refused by PostgreSQL; storing it withheld",
                    decision_id=record.decision_id,
                    sqlstate=exc.sqlstate,
                )
                await self._write_withheld(conn, record, exc.sqlstate)

    async def _write_withheld(
        self, conn: asyncpg.Connection, record: DecisionRecord, sqlstate: str
    ) -> None:
        try:
            await conn.execute(_INSERT, *_columns([_withheld(record, sqlstate)]))
        except _REFUSED as exc:
            # Not even the withheld form fits (its id or time is bad): count it and move
            # on rather than block every later decision behind it.
            self._metrics.log_lost.inc()
            log.error(
                "decision record cannot be stored",
                decision_id=record.decision_id[:80],
                sqlstate=exc.sqlstate,
            )

    def _give_up(self) -> None:
        lost = len(self)
        if lost:
            self._metrics.log_lost.inc(lost)
            log.error("decision log stopped with records unwritten", lost=lost)
        self._pending.clear()
        self._metrics.log_buffered.set(0)


def _columns(batch: list[DecisionRecord]) -> list[list[Any]]:
    """The insert's eight column arrays."""
    columns: list[list[Any]] = [[] for _ in range(8)]
    for r in batch:
        row = (
            _text(r.decision_id),
            r.at,
            _text(r.entrypoint),
            _text(r.revision),
            min(max(r.latency_us, 0), _INT4_MAX),
            _json(r.input),
            _json(r.result),
            None if r.error is None else _text(r.error),
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


def _text(value: str) -> str:
    # PostgreSQL text cannot hold NUL.
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _json(value: Any) -> str:
    try:
        text = msgspec.json.encode(value).decode()
    except (TypeError, ValueError):
        return '{"withheld": "not JSON"}'
    # jsonb rejects the \u0000 escape.
    return text.replace("\\u0000", "\\ufffd") if "\\u0000" in text else text


def _withheld(record: DecisionRecord, sqlstate: str) -> DecisionRecord:
    note = {"withheld": f"refused by PostgreSQL ({sqlstate})"}
    error = f"{record.error}; " if record.error else ""
    return msgspec.structs.replace(
        record, input=note, result=note, error=f"{error}record refused ({sqlstate})"
    )
