"""Group commit of audit appends that have no transaction of their own (ADR 0025).

An entry that belongs to a caller's work is appended in the caller's transaction
(`append_entry`), so both commit or roll back together. A caller that only has something to
record (a feed page was read, a sign-in locked an account) used to commit a one-entry
transaction: one WAL flush per entry, which caps a 2-core host at about 6-7k appends/s. This
appender gathers such entries from every task of a process into one multi-row INSERT (one
statement, so one transaction and one flush for all of them) and answers each caller only
once that statement has committed.

Rules it keeps:
- durable before acknowledged: a caller's await returns (with its seq) after the INSERT
  committed, never before; a failure reaches every caller of the batch as an exception;
- bounded: at most `queue` entries wait, at most `flushes` INSERTs of at most `batch` entries
  run at once; a caller that finds no room within `wait_seconds` gets `AuditBusyError`;
- no lone entry waits for company: when no INSERT is under way, what is queued goes at once;
  otherwise the next INSERT leaves when `batch` entries are queued or `linger` has passed;
- seqs come from the sequence inside one statement, so the sealer sees a batch as it sees
  `append_entries`: committed rows, sealed in its order (ADR 0011), nothing to change there.
"""

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
import structlog

from hub.audit import repository
from hub.audit.errors import (
    AuditBusyError,
    AuditClosedError,
    AuditEntryRejectedError,
    AuditWriteError,
)
from hub.audit.metrics import AuditMetrics, default_metrics
from hub.audit.schemas import AuditEntry
from hub.kit.clock import Clock, utcnow
from hub.kit.db import Database
from hub.settings import Settings

log = structlog.get_logger(__name__)

# PostgreSQL refused the statement because of what is in it (class 22 data exceptions, class
# 23 constraints) or asyncpg could not encode an argument: the statement did not run, nothing
# committed, and the fault lies with some entry, so each request is tried again on its own.
_REJECTED = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.exceptions._base.DataError,
)
# The `outcome` label of hub_audit_append_refused_total for each error a caller can get.
_OUTCOMES: dict[type[Exception], str] = {
    AuditBusyError: "busy",
    AuditClosedError: "closed",
    AuditWriteError: "write_failed",
    AuditEntryRejectedError: "rejected",
}


@dataclass(frozen=True, slots=True)
class AppenderOptions:
    """Bounds of one process's appender (see the `audit_append_*` settings)."""

    batch: int = 256
    linger_seconds: float = 0.001
    flushes: int = 2
    queue: int = 10_000
    wait_seconds: float = 2.0
    timeout_seconds: float = 10.0
    close_seconds: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> "AppenderOptions":
        """The options these settings describe."""
        return cls(
            batch=settings.audit_append_batch,
            linger_seconds=settings.audit_append_linger_ms / 1000,
            flushes=settings.audit_append_flushes,
            queue=settings.audit_append_queue,
            wait_seconds=settings.audit_append_wait_seconds,
            timeout_seconds=settings.audit_append_timeout_seconds,
        )


@dataclass(slots=True)
class _Request:
    """One caller's entries (written together, in one statement) and its answer."""

    entries: Sequence[AuditEntry]
    at: datetime
    done: "asyncio.Future[list[int]]" = field(repr=False)


class AuditAppender:
    """Collects a process's standalone appends into shared INSERTs; one per process."""

    def __init__(
        self,
        db: Database,
        *,
        options: AppenderOptions | None = None,
        clock: Clock = utcnow,
        metrics: AuditMetrics | None = None,
    ) -> None:
        self._db, self._clock = db, clock
        self._metrics = metrics or default_metrics()
        self._options = options or AppenderOptions()
        self._pending: deque[_Request] = deque()
        self._queued = 0  # entries in `_pending`
        self._flushing: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._closing = False
        self._wake = asyncio.Event()  # something was queued (or closing began)
        self._full = asyncio.Event()  # a whole batch is queued: stop lingering
        self._room = asyncio.Event()  # entries left the queue
        self._slot = asyncio.Event()  # an INSERT finished
        self.inserts = 0  # INSERTs that committed (entries per INSERT = group commit's gain)

    @classmethod
    def from_settings(cls, settings: Settings, db: Database) -> "AuditAppender":
        """The appender these settings describe (its task starts on the first append)."""
        return cls(db, options=AppenderOptions.from_settings(settings))

    async def append(self, entry: AuditEntry, *, at: datetime | None = None) -> int:
        """Append one entry (dated `at`, default now) and return its seq once committed."""
        return (await self.append_many([entry], at=at))[0]

    async def append_many(
        self, entries: Sequence[AuditEntry], *, at: datetime | None = None
    ) -> list[int]:
        """Append entries that must go in together (one statement); their seqs, in order,
        once committed. Raises `AuditBusyError`, `AuditClosedError`, `AuditWriteError` or
        `AuditEntryRejectedError`. A caller cancelled while waiting does not withdraw its
        entries: what it did is still recorded."""
        if not entries:
            return []
        await self._admit(len(entries))
        request = _Request(
            tuple(entries),
            self._clock() if at is None else at,
            asyncio.get_running_loop().create_future(),
        )
        self._pending.append(request)
        self._queued += len(entries)
        self._metrics.queued.inc(len(entries))
        if self._queued >= self._options.batch:
            self._full.set()
        self._wake.set()
        self._start()
        return await request.done

    @property
    def queued(self) -> int:
        """Entries waiting for an INSERT (not counting those in flight)."""
        return self._queued

    async def aclose(self) -> None:
        """Take no more entries, write what is queued and wait for the INSERTs under way
        (at most `close_seconds`; callers still waiting after that get `AuditClosedError`)."""
        self._closing = True
        self._wake.set()
        self._full.set()
        self._room.set()
        if self._runner is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._options.close_seconds):
                    await asyncio.shield(self._runner)
                    while self._flushing:
                        await asyncio.wait(set(self._flushing))
            self._runner.cancel()
        self._fail_pending(AuditClosedError("the audit appender stopped before this entry"))

    async def _admit(self, n: int) -> None:
        """Wait for room for `n` entries (a request larger than the queue goes alone)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._options.wait_seconds
        while True:
            if self._closing:
                self._metrics.refused.labels("closed").inc()
                raise AuditClosedError("the audit appender is shutting down")
            if self._queued == 0 or self._queued + n <= self._options.queue:
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                self._metrics.refused.labels("busy").inc()
                raise AuditBusyError(
                    f"{self._queued} audit entries are waiting to be written", retry_after=1
                )
            self._room.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._room.wait()

    def _start(self) -> None:
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(), name="audit-appender")
            self._runner.add_done_callback(self._stopped)

    def _stopped(self, runner: asyncio.Task[None]) -> None:
        """A runner that died of a bug must not leave callers waiting for ever."""
        if not runner.cancelled() and runner.exception() is not None:
            log.error("audit appender stopped", error=repr(runner.exception())[:200])
            self._fail_pending(AuditWriteError("the audit appender stopped"))

    async def _run(self) -> None:
        """Hand queued requests to INSERTs until closed and drained."""
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._free_slot()
            if self._flushing and not self._closing:
                await self._linger()
            self._launch(self._take())

    async def _free_slot(self) -> None:
        while len(self._flushing) >= self._options.flushes:
            self._slot.clear()
            await self._slot.wait()

    async def _linger(self) -> None:
        """An INSERT is under way: wait a little for company, unless a batch is full."""
        if self._queued >= self._options.batch:
            return
        self._full.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._options.linger_seconds):
                await self._full.wait()

    def _take(self) -> list[_Request]:
        """Whole requests from the front of the queue, up to `batch` entries (at least one)."""
        taken = [self._pending.popleft()]
        size = len(taken[0].entries)
        while self._pending and size + len(self._pending[0].entries) <= self._options.batch:
            request = self._pending.popleft()
            taken.append(request)
            size += len(request.entries)
        self._queued -= size
        self._metrics.queued.dec(size)
        self._room.set()
        return taken

    def _launch(self, batch: list[_Request]) -> None:
        task = asyncio.create_task(self._flush(batch), name="audit-append-flush")
        self._flushing.add(task)

        def finished(done: asyncio.Task[None]) -> None:
            self._flushing.discard(done)
            self._slot.set()

        task.add_done_callback(finished)

    async def _flush(self, batch: list[_Request]) -> None:
        """Write one batch; answer every request in it, with seqs or an error."""
        try:
            seqs = await self._write(batch)
        except _REJECTED as exc:
            if len(batch) == 1:
                self._fail(
                    batch[0], AuditEntryRejectedError(f"the audit entry was refused: {exc}"), exc
                )
                return
            # One bad entry must not fail its neighbours: the statement did not run, so each
            # request is written alone and only the guilty one fails.
            log.warning("audit batch refused; writing its requests one by one", error=str(exc))
            for request in batch:
                await self._flush([request])
            return
        except Exception as exc:  # every caller must hear of any failure
            log.warning(
                "audit batch failed",
                entries=sum(len(r.entries) for r in batch),
                error=repr(exc)[:200],
            )
            for request in batch:
                self._fail(request, AuditWriteError("the audit entry could not be written"), exc)
            return
        start = 0
        for request in batch:
            end = start + len(request.entries)
            if not request.done.done():  # a cancelled caller's entries are written all the same
                request.done.set_result(seqs[start:end])
            start = end

    async def _write(self, batch: list[_Request]) -> list[int]:
        """One INSERT outside any transaction: it commits (and waits for its WAL flush)
        before PostgreSQL answers, so returning means committed."""
        entries = [entry for request in batch for entry in request.entries]
        ats = [request.at for request in batch for _ in request.entries]
        started = time.perf_counter()
        try:
            async with (
                asyncio.timeout(self._options.timeout_seconds),
                self._db.connection() as conn,
            ):
                seqs = await repository.append_stamped(conn, entries, ats=ats)
        finally:
            self._metrics.flush_seconds.observe(time.perf_counter() - started)
        if len(seqs) != len(entries):
            raise RuntimeError(f"{len(entries)} audit entries sent, {len(seqs)} seqs returned")
        self.inserts += 1
        self._metrics.batch_entries.observe(len(entries))
        self._metrics.appended.inc(len(entries))
        return seqs

    def _fail_pending(self, error: Exception) -> None:
        while self._pending:
            self._fail(self._pending.popleft(), error, None)
        self._metrics.queued.dec(self._queued)
        self._queued = 0

    def _fail(self, request: _Request, error: Exception, cause: BaseException | None) -> None:
        """Answer one request with `error` (a fresh instance per caller: one exception object
        raised in many tasks would collect all their tracebacks). Counted even when its caller
        was cancelled: its entries were not written all the same."""
        self._metrics.refused.labels(_OUTCOMES[type(error)]).inc()
        if request.done.done():
            return
        fresh = type(error)(str(error))
        fresh.__cause__ = cause
        request.done.set_exception(fresh)
