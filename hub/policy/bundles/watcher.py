"""`BundleWatcher`: keeps this process's policy engine on the bundle PostgreSQL says is active.

On start it loads the active bundle (or, before any activation, the default bundle folder)
and hands the engine to the policy service. Then it listens for activation notices on Redis
and re-checks PostgreSQL every `recheck_seconds`, so a notice lost while Redis was away
delays a swap by one period at most. A notice only says "look now": the revision to load is
always read from PostgreSQL. An engine that fails to load leaves the previous one in force,
is logged and counted, and is not retried until the active revision changes.
"""

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Protocol

import asyncpg
import structlog
from prometheus_client import REGISTRY, CollectorRegistry, Counter
from redis.exceptions import RedisError

from hub.kit.db import Database
from hub.kit.errors import HubError, UnavailableError
from hub.kit.redis import RedisStore
from hub.policy.bundle import LoadedBundle, load_bundle_dir, load_bundle_files
from hub.policy.bundles.notices import activation_channel, process_id, report_process_revision
from hub.policy.bundles.service import active_revision, load_active
from hub.policy.engines import load_engine
from hub.policy.ports import PolicyEngine
from hub.settings import Settings

EngineLoader = Callable[[LoadedBundle], PolicyEngine]
# A dependency that is down for now: retried on the next notice or check.
_TRANSIENT = (
    OSError,
    TimeoutError,
    RedisError,
    UnavailableError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)
DEFAULT = "default"  # the source name of the default bundle folder

log = structlog.get_logger("hub.policy.bundles")


class Activator(Protocol):
    """What the watcher needs from the policy service."""

    def activate(self, engine: PolicyEngine) -> PolicyEngine | None:
        """Make `engine` the one every following decision uses."""
        ...


class WatcherMetrics:
    """Counters of bundle swaps and of bundles that would not load (alert on the latter)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.swaps = Counter(
            "hub_policy_bundle_swaps_total",
            "Engines swapped in by the bundle watcher.",
            registry=registry,
        )
        self.load_failures = Counter(
            "hub_policy_bundle_load_failures_total",
            "Bundles that failed to load; the previous engine stayed active.",
            registry=registry,
        )


@cache
def default_watcher_metrics() -> WatcherMetrics:
    """The process's watcher metrics, on Prometheus's default registry."""
    return WatcherMetrics(REGISTRY)


@dataclass(slots=True)
class _Loaded:
    """What the watcher is running: a revision, and whether it came from the database."""

    revision: str
    source: str


class BundleWatcher:
    """Swaps the policy engine whenever the active bundle changes."""

    def __init__(
        self,
        *,
        db: Database,
        redis: RedisStore,
        policy: Activator,
        default_dir: Path,
        load: EngineLoader = load_engine,
        recheck_seconds: float = 10.0,
        role: str = "",
        metrics: WatcherMetrics | None = None,
    ) -> None:
        self._db, self._redis, self._policy = db, redis, policy
        self._default_dir = default_dir
        self._load = load
        self._recheck = recheck_seconds
        self.process = process_id(role)
        self._metrics = metrics or default_watcher_metrics()
        self._loaded: _Loaded | None = None
        self._failed: str | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._stopping = False

    @property
    def revision(self) -> str | None:
        """The revision this process evaluates (None before any engine loaded)."""
        return None if self._loaded is None else self._loaded.revision

    async def start(self, *, subscribe_wait: float = 2.0) -> None:
        """Load the active (or default) bundle now, then follow activations in the background
        (waiting up to `subscribe_wait` seconds for the subscription, so that an activation
        after `start` returns is heard; without Redis the periodic check still follows)."""
        await self.sync()
        self._task = asyncio.create_task(self._follow(), name="policy-bundle-watcher")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), subscribe_wait)

    async def stop(self) -> None:
        """Stop following (idempotent)."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, 5.0)
            self._task = None

    async def sync(self) -> bool:
        """Load the active bundle if this process does not run it yet; True on a swap."""
        async with self._lock:
            try:
                wanted = await active_revision(self._db)
                if not self._needs(wanted):
                    return False
                swapped = await self._swap(wanted)
            except _TRANSIENT as exc:
                log.warning("policy bundle check failed; will retry", error=repr(exc)[:300])
                return False
        if swapped:
            await self._report()
        return swapped

    def _needs(self, wanted: str | None) -> bool:
        key = wanted or DEFAULT
        if key == self._failed:
            return False
        if self._loaded is None:
            return True
        if wanted is None:
            return self._loaded.source != DEFAULT
        return (self._loaded.source, self._loaded.revision) != ("db", wanted)

    async def _swap(self, wanted: str | None) -> bool:
        try:
            loaded, source = await self._read(wanted)
            engine = await asyncio.to_thread(self._load, loaded)
        except _TRANSIENT:
            raise
        except Exception as exc:  # PolicyLoadError, BundleError or a compiler fault alike
            self._failed = wanted or DEFAULT
            self._metrics.load_failures.inc()
            detail = exc.detail if isinstance(exc, HubError) else repr(exc)
            log.error(
                "policy bundle failed to load; previous engine kept",
                revision=wanted or DEFAULT,
                error=detail[:500],
            )
            return False
        self._policy.activate(engine)
        self._loaded, self._failed = _Loaded(revision=engine.revision, source=source), None
        self._metrics.swaps.inc()
        log.info("policy bundle active in this process", revision=engine.revision, source=source)
        return True

    async def _read(self, wanted: str | None) -> tuple[LoadedBundle, str]:
        if wanted is not None:
            active = await load_active(self._db)
            if active is not None:
                return load_bundle_files(active[1]), "db"
        return await asyncio.to_thread(load_bundle_dir, self._default_dir), DEFAULT

    async def _report(self) -> None:
        if self._loaded is None:
            return
        try:
            await report_process_revision(self._redis, self._loaded.revision, process=self.process)
        except (RedisError, OSError) as exc:
            log.debug("process revision not reported", error=repr(exc)[:200])

    async def _follow(self) -> None:
        """Listen for notices; re-check on a timer; resubscribe after a Redis outage."""
        while not self._stopping:
            try:
                await self._listen()
            except Exception as exc:  # the watcher must outlive any one failure
                # redis-py may turn a cancellation into a ConnectionError: check before retrying.
                if self._stopping:
                    return
                if isinstance(exc, _TRANSIENT):
                    log.warning("activation notices unavailable; polling", error=repr(exc)[:200])
                else:
                    log.exception("policy bundle watcher failed; restarting it")
                await asyncio.sleep(min(self._recheck, 5.0))
                await self.sync()

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        pubsub = self._redis.client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(activation_channel(self._redis))
            self._listening.set()
            await self.sync()  # anything activated while we were not subscribed
            due = loop.time() + self._recheck
            while not self._stopping:
                message = await pubsub.get_message(timeout=max(0.0, min(1.0, due - loop.time())))
                if message is not None:
                    await self.sync()
                if loop.time() >= due:
                    await self.sync()
                    await self._report()  # heartbeat: keeps this process on the status page
                    due = loop.time() + self._recheck
        finally:
            self._listening.clear()
            with contextlib.suppress(*_TRANSIENT):
                await pubsub.aclose()  # type: ignore[no-untyped-call]


def build_watcher(
    settings: Settings, *, db: Database, redis: RedisStore, policy: Activator, role: str = ""
) -> BundleWatcher:
    """A watcher for these settings: default bundle from `policy_dir`, the engine budget."""

    def load(bundle: LoadedBundle) -> PolicyEngine:
        return load_engine(bundle, timeout_ms=settings.policy_eval_timeout_ms)

    return BundleWatcher(
        db=db,
        redis=redis,
        policy=policy,
        default_dir=Path(settings.policy_dir),
        load=load,
        role=role,
    )
