"""Admission of feed page work in one API process, so readers never crowd out ingest.

A page of ingested events costs milliseconds of event-loop CPU (decoding, ~40 policy
decisions, redaction) and as much again in PostgreSQL; twenty readers asking back to back
would take both cores from ingest. The gate gives each process two bounds (ADR 0026):

- pages in progress at once (`concurrency`), with a short FIFO wait queue (`queue` places,
  `max_wait` seconds), so pages never hold more than a few pooled connections;
- a CPU budget: every HTTP request on the feed routes is metered step by step on the event
  loop (`MeteredFeedRequests`: authentication, the page, encoding and sending, and requests
  the gate refuses) and drawn from a bucket refilled at `cpu_ms_per_second`, lowered to
  `cpu_ms_beside_ingest` while ingest presses on the process: it accepted a batch within
  `INGEST_RECENT_SECONDS` and, besides the feeds, its event loop used at least
  `ingest_busy_percent` of a core over the last `LOAD_WINDOW_SECONDS`; and lowered again to
  `SATURATED_MS_PER_SECOND` while ingest presses and the host has less than
  `host_idle_percent` of its CPU idle (`HostIdle`): pages then use only what ingest leaves
  idle. A page starts only while the bucket is not in debt.

Beyond them a reader gets `FeedsBusyError` (503 `feeds_busy` with Retry-After), never a
500; ingest never passes through the gate, so it is never refused by it.
"""

import asyncio
import hashlib
import math
import os
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from hub.feeds.errors import FeedsBusyError
from hub.feeds.metrics import FeedMetrics
from hub.settings import Settings

T = TypeVar("T")

# A process that accepted an ingest batch this recently is ingesting: pages get the lower budget
# if ingest also keeps the process busy (a lone batch now and then leaves readers alone).
INGEST_RECENT_SECONDS = 1.0
# How often the process's CPU use besides the feeds is measured (the last window's share).
LOAD_WINDOW_SECONDS = 0.5
# The most CPU the bucket saves up while idle, as seconds of its refill rate: a quiet process
# starts a burst of pages at once, but not more than this much work ahead of the budget.
BURST_SECONDS = 0.2
# ... and never less than this much CPU: a whole request is metered, authentication first, so
# a bucket that saved up less than one request costs (a cold first page: ~10 ms) would refuse
# a reader on its own work before the gate ever admitted it.
MIN_BURST_NS = 50_000_000
# A load window older than this says nothing of now: it is started again and reads as idle.
LOAD_STALE_SECONDS = 2.0
NS = 1_000_000_000
# A process whose ingest presses marks it for the host's other API processes (`HostMark`) at
# most this often, and a process reads the mark at most this often.
MARK_EVERY_SECONDS = 0.25
MARK_READ_EVERY_SECONDS = 0.1
# The route handler option naming a feed route's channel (`feed_channel`).
FEED_CHANNEL = "feed_channel"
# The bucket's refill while ingest presses and the host has next to no idle CPU: a trickle,
# not nothing, so a reader is told when to come back (Retry-After, the debt's refill time)
# and is never shut out for good; measured in bench/ingest.py --compare-readers, readers
# at 10 ms/s per process there (~3 pages/s) raised ingest's p99 by ~8 %, at 1 ms/s not
# measurably (ADR 0026, amendment of 2026-12-06).
SATURATED_MS_PER_SECOND = 1
# ... and at that rate the bucket saves up at most this much (not `MIN_BURST_NS`): one page
# with its authentication, so a page now and then still starts, while a bucket filled before
# ingest began to press cannot spend a burst of pages at the moment it does (seen in the
# compared phases: 1-3 pages/s, all at the start of each, raised ingest's p99).
SATURATED_BURST_NS = 10_000_000
# The longest Retry-After a refused reader is given. The refill time of a debt holds only while
# the rate in force lasts: at the saturated trickle (1 ms/s) the debt of one cold page (a
# fill's wall time is charged) read as minutes (264 s seen in bench/ingest.py), though once
# ingest eases the same debt refills at the full rate in well under a second. A reader that
# comes back too early is refused again before it is authenticated, at little cost, so it is
# asked to look again within this bound rather than told a time the next second may undo.
MAX_RETRY_AFTER_SECONDS = 10
# /proc/stat's aggregate line: user nice system idle iowait irq softirq steal (jiffies).
PROC_STAT = Path("/proc/stat")


@dataclass(frozen=True, slots=True)
class PageBudget:
    """The bounds of one process's page work (hub/settings.py, `HUB_FEEDS_PAGE_*`)."""

    concurrency: int = 4
    queue: int = 32
    max_wait_seconds: float = 0.5
    cpu_ms_per_second: int = 700
    cpu_ms_beside_ingest: int = 10
    ingest_busy_percent: int = 20
    host_idle_percent: int = 20

    @classmethod
    def from_settings(cls, settings: Settings) -> "PageBudget":
        """The budget the settings give."""
        return cls(
            concurrency=settings.feeds_page_concurrency,
            queue=settings.feeds_page_queue,
            max_wait_seconds=settings.feeds_page_max_wait_seconds,
            cpu_ms_per_second=settings.feeds_page_cpu_ms_per_second,
            cpu_ms_beside_ingest=settings.feeds_page_cpu_ms_beside_ingest,
            ingest_busy_percent=settings.feeds_page_ingest_busy_percent,
            host_idle_percent=settings.feeds_page_host_idle_percent,
        )


class HostMark:
    """When a process of this hub on this host last had ingest pressing on it: the mtime of
    a file in the host's temporary directory, one file per hub (its database and Redis
    prefix). The API processes of a host share its cores but not their memory: without the
    mark, a process that got no ingest connection served its readers the full budget while
    the other process's ingest saturated the machine (seen in `bench/ingest.py
    --compare-readers`: 40 pages/s beside ingest, whose p99 rose by half). Best effort: a
    mark that cannot be written or read leaves each process to its own measure."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock  # wall time: the mark is compared across processes
        self._touched = -math.inf
        self._read_at = -math.inf
        self._marked = -math.inf

    @classmethod
    def for_hub(cls, database_url: str, redis_prefix: str) -> "HostMark":
        """The mark of the hub with this database and Redis prefix on this host."""
        digest = hashlib.sha256(f"{database_url}|{redis_prefix}".encode()).hexdigest()[:16]
        return cls(Path(tempfile.gettempdir()) / f"hub-ingest-presses-{digest}")

    def touch(self) -> None:
        """Mark ingest pressing now (at most every `MARK_EVERY_SECONDS`)."""
        now = self._clock()
        if now - self._touched < MARK_EVERY_SECONDS:
            return
        self._touched = now
        try:  # never through a link someone else planted
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                os.utime(fd, (now, now))
            finally:
                os.close(fd)
        except OSError:
            return

    def recent(self, within: float) -> bool:
        """Whether some process marked ingest pressing within the last `within` seconds."""
        now = self._clock()
        if now - self._read_at >= MARK_READ_EVERY_SECONDS:
            self._read_at = now
            try:
                self._marked = self.path.stat(follow_symlinks=False).st_mtime
            except OSError:
                self._marked = -math.inf
        return now - self._marked < within


class HostIdle:
    """The share of the host's CPU left idle since the last look (at least
    `LOAD_WINDOW_SECONDS` ago; the first window starts when this is made), from the kernel's
    counters: what ingest leaves for pages while it presses. Every process of the host sees
    the same figure, whichever of them ingest uses. A long gap between looks is averaged, not
    forgotten: readers told to come back in seconds find the saturation of those seconds.
    None where the counters cannot be read (not Linux): then only ingest's own share counts."""

    def __init__(
        self,
        read: Callable[[], tuple[int, int] | None] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read or read_proc_stat
        self._clock = clock
        self._at = clock()
        self._ticks = self._read()
        self._share: float | None = None

    def share(self) -> float | None:
        """Idle CPU over total CPU (0.0-1.0) in the last full window, None if unknown."""
        now = self._clock()
        if now - self._at < LOAD_WINDOW_SECONDS:
            return self._share
        ticks = self._read()
        if ticks is None or self._ticks is None:
            self._share = None  # nothing to compare with (or no counters at all)
        else:
            idle, total = ticks[0] - self._ticks[0], ticks[1] - self._ticks[1]
            self._share = idle / total if total > 0 else self._share
        self._at, self._ticks = now, ticks
        return self._share


def read_proc_stat(path: Path = PROC_STAT) -> tuple[int, int] | None:
    """(idle, total) jiffies of all CPUs since boot, from the first line of /proc/stat
    (idle counts iowait too), None when it cannot be read."""
    try:
        with path.open("rb") as f:
            first = f.readline(512)
        fields = [int(v) for v in first.split()[1:9]]
    except (OSError, ValueError):
        return None
    if len(fields) < 5:
        return None
    return fields[3] + fields[4], sum(fields)


class PageGate:
    """The process's admission of page work: concurrency, a bounded FIFO queue, CPU budget."""

    def __init__(
        self,
        budget: PageBudget,
        *,
        metrics: FeedMetrics,
        clock: Callable[[], float] = time.monotonic,
        cpu_clock: Callable[[], int] = time.thread_time_ns,
        host: HostMark | None = None,
        idle: HostIdle | None = None,
    ) -> None:
        self.budget = budget
        self._metrics = metrics
        self._clock = clock
        self._load = _OtherLoad(clock, cpu_clock)
        self._host = host  # the host's other API processes' ingest (None: this one's only)
        self._idle = idle  # the host's idle CPU (None: not looked at)
        self._in_flight = 0
        self._waiting: deque[asyncio.Event] = deque()
        self._at = clock()
        self._balance_ns = self._burst_ns(budget.cpu_ms_per_second)
        self._ingest_at = -math.inf
        self._shown_ms = 0  # the budget the gauge shows

    def note_ingest(self) -> None:
        """Ingest accepted a batch in this process: pages get the lower budget for a while,
        here and, while it presses, in the host's other API processes."""
        self._ingest_at = self._clock()
        if self._host is not None and self._ingest_presses_here():
            self._host.touch()

    def charge(self, cpu_ns: int) -> None:
        """Draw page CPU from the bucket (it may go into debt; new pages then wait). Called
        on every step of a page, so it only subtracts: the refill is added on admission."""
        self._balance_ns -= cpu_ns
        self._load.feeds_ns += cpu_ns

    def charge_database(self, wall_ns: int) -> None:
        """Draw from the bucket for page work done in PostgreSQL (by its wall time, which
        bounds its CPU there); not this process's CPU, so not counted in its load."""
        self._balance_ns -= wall_ns

    def _count_cpu(self, cpu_ns: int) -> None:
        self._metrics.page_cpu.inc(cpu_ns / NS)

    @asynccontextmanager
    async def admitted(self, channel: str) -> AsyncIterator["Turn"]:
        """Hold one page's turn: granted at once, after a short wait, or `FeedsBusyError`
        (counted by channel and outcome)."""
        await self._enter(channel)
        turn = Turn(self, channel)
        try:
            yield turn
        finally:
            turn.give_back()

    def metered(self, work: Coroutine[Any, Any, T]) -> Awaitable[T]:
        """`work`, its event-loop CPU charged to the bucket as each step runs."""
        return _Metered(work, self.charge, self._count_cpu)

    def refuse_hopeless(self, channel: str) -> None:
        """Refuse at once (`FeedsBusyError`) a request that could not start within the
        longest wait anyway: its queue is full, or the bucket's debt takes longer than that
        to refill. Called before the request is authenticated, so a reader over the budget
        costs the process little more than its HTTP parsing."""
        if len(self._waiting) >= self.budget.queue:
            self._refuse(channel, retry_after=self._retry_after(self._wait_for_turn()))
        wait = self._wait_for_turn()
        if math.isfinite(wait) and wait > self.budget.max_wait_seconds:
            self._refuse(channel, retry_after=self._retry_after(wait))

    async def _enter(self, channel: str) -> None:
        if not self._waiting and self._wait_for_turn() == 0.0:
            self._take(channel, waited=0.0)
            return
        self.refuse_hopeless(channel)  # a full queue, or a debt no wait would cover
        started = self._clock()
        me = asyncio.Event()
        self._waiting.append(me)
        try:
            wait = await self._queue_until_turn(me, deadline=started + self.budget.max_wait_seconds)
        finally:
            self._forget(me)
        if wait == 0.0:
            self._take(channel, waited=self._clock() - started)
            return
        self._refuse(channel, retry_after=self._retry_after(wait))

    async def _queue_until_turn(self, me: asyncio.Event, *, deadline: float) -> float:
        """Wait in line until this waiter may take a turn (0.0), or until waiting longer
        cannot help: the time it would still have needed (inf when it waited for a place)."""
        while True:
            wait = self._wait_for_turn() if self._waiting[0] is me else math.inf
            if wait == 0.0:
                return 0.0
            left = deadline - self._clock()
            if left <= 0 or (math.isfinite(wait) and wait > left):
                return wait
            me.clear()
            with suppress(TimeoutError):  # woken, or time to look again
                await asyncio.wait_for(me.wait(), timeout=min(wait, left))

    def _wait_for_turn(self) -> float:
        """Seconds until a page could start now: 0.0, the refill time of the bucket's debt,
        or inf while every place is taken."""
        if self._in_flight >= self.budget.concurrency:
            return math.inf
        rate_ns = self._refill()
        if self._balance_ns > 0:
            return 0.0
        return max(-self._balance_ns, 1) / rate_ns

    def _take(self, channel: str, *, waited: float) -> None:
        self._in_flight += 1
        self._metrics.pages.labels(channel, "admitted").inc()
        self._metrics.page_wait.observe(waited)
        self._wake_first()

    def _leave(self) -> None:
        self._in_flight -= 1
        self._wake_first()

    def _forget(self, me: asyncio.Event) -> None:
        was_first = bool(self._waiting) and self._waiting[0] is me
        if me in self._waiting:
            self._waiting.remove(me)
        if was_first:
            self._wake_first()

    def _wake_first(self) -> None:
        if self._waiting:
            self._waiting[0].set()

    def _refuse(self, channel: str, *, retry_after: int) -> None:
        self._metrics.pages.labels(channel, "refused").inc()
        raise FeedsBusyError(
            "feed pages are over this process's budget (ingest has priority); retry after "
            f"{retry_after} s",
            retry_after=retry_after,
        )

    def _retry_after(self, wait: float) -> int:
        """Whole seconds a refused reader should wait: the bucket's refill time at the rate in
        force, at least 1 and at most `MAX_RETRY_AFTER_SECONDS`."""
        if not math.isfinite(wait):
            return 1
        return min(MAX_RETRY_AFTER_SECONDS, max(1, math.ceil(wait)))

    def _rule(self) -> tuple[int, int]:
        """The bucket's refill rate now and the most it may save up at that rate, both in ns
        of CPU (per second; in all)."""
        budget = self.budget
        saturated = self._host_saturated()  # looked at every time: keeps its window fresh
        if not self._ingest_presses():
            ms, ceiling_ns = budget.cpu_ms_per_second, self._burst_ns(budget.cpu_ms_per_second)
        elif saturated:
            ms = min(budget.cpu_ms_beside_ingest, SATURATED_MS_PER_SECOND)
            ceiling_ns = SATURATED_BURST_NS
        else:
            ms = budget.cpu_ms_beside_ingest
            ceiling_ns = self._burst_ns(ms)
        if ms != self._shown_ms:  # which of the three operators see, written on a change only
            self._shown_ms = ms
            self._metrics.page_budget.set(ms)
        return ms * 1_000_000, ceiling_ns

    def _host_saturated(self) -> bool:
        """Whether the host had less idle CPU than `host_idle_percent` over the last window
        (never when it cannot tell, or when the setting is 0)."""
        if self._idle is None or self.budget.host_idle_percent == 0:
            return False
        share = self._idle.share()
        return share is not None and share * 100 < self.budget.host_idle_percent

    def _ingest_presses(self) -> bool:
        """Whether ingest presses on this process or, by the host's mark, on another API
        process of this host (they share its cores)."""
        if self._ingest_presses_here():
            return True
        return self._host is not None and self._host.recent(INGEST_RECENT_SECONDS)

    def _ingest_presses_here(self) -> bool:
        """Whether ingest ran lately and, with what else runs here, keeps the process busy."""
        busy = self._load.share() * 100 >= self.budget.ingest_busy_percent  # keeps it fresh
        return busy and self._clock() - self._ingest_at < INGEST_RECENT_SECONDS

    def _refill(self) -> int:
        """Add what the bucket earned since the last refill; the refill rate now (ns/s)."""
        now = self._clock()
        rate, ceiling = self._rule()
        self._balance_ns = min(ceiling, self._balance_ns + int((now - self._at) * rate))
        self._at = now
        return rate

    @staticmethod
    def _burst_ns(ms_per_second: int) -> int:
        return max(MIN_BURST_NS, int(ms_per_second * 1_000_000 * BURST_SECONDS))


class _OtherLoad:
    """The event loop's CPU use besides the feeds' metered requests, as a share of one core
    over the last window: ingest's (and the unmetered rest: HTTP parsing, row decoding,
    timers). The loop's thread only (`time.thread_time_ns`, read on the loop): work handed to
    threads (an image's blur, a SOAP body's validation, a test's own detectors) is not the
    loop's and says nothing of ingest. The first window starts at the first look."""

    def __init__(self, clock: Callable[[], float], cpu_clock: Callable[[], int]) -> None:
        self._clock = clock
        self._cpu_clock = cpu_clock
        self.feeds_ns = 0  # metered feed work so far (the gate adds each step)
        self._at: float | None = None
        self._cpu_at = self._feeds_at = 0
        self._share = 0.0

    def share(self) -> float:
        """The last full window's share (measured again once a window has passed)."""
        now = self._clock()
        elapsed = math.inf if self._at is None else now - self._at
        if elapsed < LOAD_WINDOW_SECONDS:
            return self._share
        cpu = self._cpu_clock()
        if elapsed > LOAD_STALE_SECONDS:
            self._share = 0.0  # no recent window: start one
        else:
            other = (cpu - self._cpu_at) - (self.feeds_ns - self._feeds_at)
            self._share = max(0.0, other / NS / elapsed)
        self._at, self._cpu_at, self._feeds_at = now, cpu, self.feeds_ns
        return self._share


class MeteredFeedRequests:
    """ASGI middleware of the feed routers: each HTTP request's event-loop CPU, from routing
    to the last byte sent (authentication, guard, page, encoding, a refusal), is charged to
    the process's page gate, and a request the gate could not admit in time is refused
    before any of that work. Metering only the page itself missed about half of what a
    reader cost ingest (issue 17). WebSockets (the live feed) are not pages: not metered."""

    def __init__(self, app: ASGIApp, *, gate: Callable[[], PageGate]) -> None:
        # A getter, not the gate: Litestar deep-copies a router's middleware arguments, and
        # a function is copied as itself (the gate holds locks and must stay one per process).
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request, metered when it is HTTP."""
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        gate = self.gate()
        channel = feed_channel(scope)
        if channel is not None:
            gate.refuse_hopeless(channel)  # the route's error handlers answer it
        await gate.metered(self._run(scope, receive, send))

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def feed_channel(scope: Scope) -> str | None:
    """The gate's channel of the request's route (`opt={FEED_CHANNEL: ...}` on its handler),
    which early refusals count under; None where the handler decides (SOAP's one endpoint
    also answers acknowledgements, which never pass the gate): then only metered."""
    handler = scope.get("route_handler")
    channel = handler.opt.get(FEED_CHANNEL) if handler is not None else None
    return channel if isinstance(channel, str) else None


class Turn:
    """One page's place among the pages in progress."""

    def __init__(self, gate: PageGate, channel: str) -> None:
        self._gate = gate
        self._channel = channel
        self._held = True

    def give_back(self) -> None:
        """Free the place (once)."""
        if self._held:
            self._held = False
            self._gate._leave()

    @asynccontextmanager
    async def stepped_out(self) -> AsyncIterator[None]:
        """Give the place back while a long-poll waits for new events, then queue for one
        again (or be refused like a new page) before working on them."""
        self.give_back()
        yield
        await self._gate._enter(self._channel)
        self._held = True


class _Metered:
    """Drives a coroutine step by step, charging each step's thread CPU time (only this
    page's own code: what other tasks run between its steps is theirs). asyncpg's decoding
    of result rows runs in protocol callbacks, outside the steps, and is not counted."""

    def __init__(
        self,
        work: Coroutine[Any, Any, Any],
        charge: Callable[[int], None],
        count: Callable[[int], None],
    ) -> None:
        self._work = work
        self._charge = charge  # each step, at once: pages that start meanwhile see it
        self._count = count  # the page's total, once (the metric)

    def __await__(self) -> Generator[Any, Any, Any]:
        work, charge, clock = self._work, self._charge, time.thread_time_ns
        value: Any = None
        error: BaseException | None = None
        total = 0
        try:
            while True:
                started = clock()
                try:
                    yielded = work.send(value) if error is None else work.throw(error)
                finally:
                    spent = clock() - started
                    total += spent
                    charge(spent)
                try:
                    value, error = (yield yielded), None
                except BaseException as exc:  # cancellation and the like go into the page
                    value, error = None, exc
        except StopIteration as stop:
            return stop.value
        finally:
            self._count(total)
