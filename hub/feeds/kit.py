"""The feed collaborators one API process shares: bus, live hub, agency view, keys."""

import asyncio
import contextlib
import hashlib
import time
from functools import cached_property
from pathlib import Path
from typing import Protocol, TypeVar
from uuid import UUID

import msgspec
import structlog

from hub.audit import AuditAppender
from hub.delivery.agencies import get_agency
from hub.delivery.kit import release_hash_key
from hub.delivery.schemas import Agency, Subscription
from hub.feeds.admission import HostIdle, HostMark, PageBudget, PageGate
from hub.feeds.bus import FeedBus
from hub.feeds.metrics import FeedMetrics, default_feed_metrics
from hub.feeds.rules import Cursors, Positions, etag_key
from hub.kit.db import Database
from hub.kit.errors import NotFoundError
from hub.kit.redis import RedisStore
from hub.policy.guard import Decider
from hub.policy.schemas import DecisionRecord
from hub.settings import Settings

T = TypeVar("T", bound=msgspec.Struct)

log = structlog.get_logger("hub.feeds")

# How stale this process's view of an agency may be (a disable reaches feeds this fast).
AGENCY_TTL_SECONDS = 2.0
RELEASE_ENTRYPOINT = "hub/release/decision"


class PolicyPort(Decider, Protocol):
    """The policy service as feeds use it: decisions plus the active revision (for ETags)."""

    @property
    def revision(self) -> str | None:
        """The active bundle's revision."""
        ...


class CachedRelease:
    """Passes release decisions to the policy service with a cache key of the whole input.

    `hub/release/decision` reads only its input and the bundle (no clock), so the same input
    under the same bundle gets the same answer; many agencies paging the same events then
    cost one evaluation per (recipient, event). Every call is still its own logged decision
    with its own id; only the evaluation is reused.
    """

    def __init__(self, policy: PolicyPort) -> None:
        self._policy = policy

    @property
    def revision(self) -> str | None:
        """The active bundle's revision."""
        return self._policy.revision

    async def decide(
        self,
        entrypoint: str,
        input: msgspec.Struct,
        *,
        result_type: type[T],
        cache_key: bytes | None = None,
    ) -> tuple[T, DecisionRecord]:
        """Decide, keying release answers on a digest of their input."""
        if cache_key is None and entrypoint == RELEASE_ENTRYPOINT:
            cache_key = hashlib.sha256(msgspec.json.encode(input)).digest()
        return await self._policy.decide(
            entrypoint, input, result_type=result_type, cache_key=cache_key
        )


class AgencyView:
    """Agencies by name (with their subscriptions), cached for `AGENCY_TTL_SECONDS`."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._cache: dict[str, tuple[float, Agency | None, Subscription]] = {}

    async def get(self, name: str) -> Agency | None:
        """The registered agency called `name`, or None."""
        return (await self._entry(name))[1]

    async def subscription(self, name: str) -> Subscription:
        """What the agency subscribed to (everything when it is unknown)."""
        return (await self._entry(name))[2]

    async def _entry(self, name: str) -> tuple[float, Agency | None, Subscription]:
        hit = self._cache.get(name)
        if hit is not None and time.monotonic() - hit[0] < AGENCY_TTL_SECONDS:
            return hit
        subscription, agency = Subscription(), None
        try:
            read, agency = await get_agency(self._db, name)
            subscription = read.subscription
        except NotFoundError:
            agency = None
        if agency is not None and agency.name != name:  # matched by id, not by name
            agency = None
        if len(self._cache) > 10_000:
            self._cache.clear()
        entry = (time.monotonic(), agency, subscription)
        self._cache[name] = entry
        return entry


# Locks for filling audiences' offers, per process (see FeedKit.fill_lock).
FILL_LOCK_STRIPES = 64


class VacuumCount:
    """Rows this process sequenced since it last vacuumed the queue: `due` says when to
    vacuum again (every `rows`; 0 = never, autovacuum alone)."""

    def __init__(self, rows: int) -> None:
        self._rows = rows
        self._since = 0

    def due(self, sequenced: int) -> bool:
        """Count `sequenced` more rows; whether a vacuum is due now (the count restarts)."""
        self._since += sequenced
        if not self._rows or self._since < self._rows:
            return False
        self._since = 0
        return True


class FeedKit:
    """Everything the feed use cases need, built once per process (connected lazily)."""

    def __init__(
        self,
        settings: Settings,
        *,
        db: Database,
        redis: RedisStore,
        policy: PolicyPort,
        audit: AuditAppender | None = None,
        metrics: FeedMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.metrics = metrics or default_feed_metrics()
        # Page work waits or is refused here so readers never crowd out ingest (ADR 0026).
        self.gate = PageGate(
            PageBudget.from_settings(settings),
            metrics=self.metrics,
            host=HostMark.for_hub(settings.database_url, settings.redis_prefix),
            idle=HostIdle(),
        )
        # Page, media and live-release audit entries have no transaction of their own: they
        # share the process's group commits (ADR 0025). Without one given, the kit owns one.
        self._owns_audit = audit is None
        self.audit = audit or AuditAppender.from_settings(settings, db)
        self.policy = CachedRelease(policy)
        self.bus = FeedBus(redis)
        self.agencies = AgencyView(db)
        self.media_root = Path(settings.media_dir)
        self.live_buffer = settings.feeds_live_buffer
        self.pending_vacuum = VacuumCount(settings.feeds_pending_vacuum_rows)
        # Imported here: live.py needs service.py, which needs this module's types.
        from hub.feeds.live import LiveHub

        self.live = LiveHub(self, metrics=self.metrics)
        self.bus.add_handler(self.live.on_notice)
        self.bus.add_activation_handler(self.live.on_activation)
        # Striped, so the number of locks stays bounded whatever the number of audiences.
        self._fill_locks = [asyncio.Lock() for _ in range(FILL_LOCK_STRIPES)]

    def fill_lock(self, audience_key: str) -> asyncio.Lock:
        """The process's lock for filling one audience's offers: readers of an audience that
        needs filling wait here, holding no database connection, instead of each taking a
        pooled connection to queue on the audience row's lock (which starved ingest of
        connections while twenty readers started at once)."""
        return self._fill_locks[int(audience_key[:8], 16) % FILL_LOCK_STRIPES]

    @cached_property
    def hash_key(self) -> bytes:
        """The release master key (shared by every process of the hub)."""
        return release_hash_key(self.settings)

    @cached_property
    def cursors(self) -> Cursors:
        """Cursors, encrypted and bound to their agency."""
        return Cursors(self.hash_key)

    @cached_property
    def positions(self) -> Positions:
        """The positions agencies are shown (each its own pseudonyms, ADR 0042)."""
        return Positions(self.hash_key)

    @cached_property
    def etag_key(self) -> bytes:
        """The key page validators are made with."""
        return etag_key(self.hash_key)

    @cached_property
    def notifier(self) -> "FeedPublisher":
        """The ingest hook: sequence and announce events after their batch committed."""
        return FeedPublisher(self)

    async def aclose(self) -> None:
        """Finish sequencing runs under way, drop live subscribers and stop listening."""
        if "notifier" in self.__dict__:  # made on first use (by ingest or a page)
            await self.notifier.aclose()
        await self.live.aclose()
        await self.bus.aclose()
        if self._owns_audit:
            await self.audit.aclose()


class _Run:
    """One sequencing run that batches may still join until it starts. One that queues
    behind a run under way lingers before it starts, until `hurry` is set."""

    def __init__(self, *, linger: float) -> None:
        self.started = False
        self.linger = linger
        self.hurry = asyncio.Event()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def gather(self) -> None:
        """Wait out the linger (batches committing meanwhile join), or until hurried."""
        if self.linger > 0 and not self.hurry.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.hurry.wait(), self.linger)


# How long a stopping process waits for its last sequencing run (the sweep does the rest).
SETTLE_ON_CLOSE_SECONDS = 5.0


class FeedPublisher:
    """Implements ingest's `FeedNotifier`: positions for the new events, then a notice.

    Ingest does not wait for positions (ADR 0022): a committed batch joins the next
    sequencing run of its process (group commit: batches that commit while a run is under
    way share the next one) and returns. That next run lingers `feeds_sequence_linger_ms`
    after the one under way, so under load each run places more batches (ADR 0033); a batch
    that finds no run under way starts one at once. A page calls `settle` first, which ends
    any linger, so it sees what this process accepted before it was asked. What a run could
    not do (an error, a process stopped between commit and run) the periodic sweep does."""

    def __init__(self, kit: FeedKit) -> None:
        self._kit = kit
        self._linger = kit.settings.feeds_sequence_linger_ms / 1000
        self._lock = asyncio.Lock()
        self._next: _Run | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # runs under way, kept from the GC

    async def published(self, *, node_id: UUID, event_ids: set[UUID]) -> None:
        """Start (or join) a sequencing run for committed events and return at once; never
        raises: the events are committed and queued in `feed_pending`."""
        if event_ids:
            self._kit.gate.note_ingest()  # pages yield to ingest while it runs
            self._join()

    async def settle(self, *, within: float | None = None) -> bool:
        """Return once this process's sequencing runs started or queued before this call
        have finished: every batch this process answered for then has its positions (unless
        a run failed, which it logs; the sweep retries). Without such a run it returns at
        once, asking the database nothing. With `within`, give up waiting after that many
        seconds (the runs go on); whether they finished."""
        run = self._next
        if run is None or run.done.done():
            return True
        run.hurry.set()
        try:
            await asyncio.wait_for(asyncio.shield(run.done), within)
        except TimeoutError:
            return False
        return True

    async def aclose(self) -> None:
        """Let the runs under way finish (bounded), so a stopping process leaves no batch
        it answered for to the sweep."""
        if self._next is not None:
            self._next.hurry.set()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=SETTLE_ON_CLOSE_SECONDS)

    def _join(self) -> _Run:
        run = self._next
        if run is None or run.started:
            # Behind a run under way, wait for company; on a quiet process, go at once.
            run = self._next = _Run(linger=self._linger if self._lock.locked() else 0.0)
            task = asyncio.create_task(self._sequence(run))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return run

    async def _sequence(self, run: _Run) -> None:
        from hub.feeds.service import sequence_and_announce

        async with self._lock:
            await run.gather()
            run.started = True  # committed before this point: included in this run
            try:
                await sequence_and_announce(self._kit)
            except Exception as exc:
                log.warning("feed sequencing deferred", error=repr(exc)[:200])
            finally:
                run.done.set_result(None)
