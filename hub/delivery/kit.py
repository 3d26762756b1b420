"""The delivery collaborators one hub process shares (API and worker alike)."""

from dataclasses import dataclass
from pathlib import Path

from adapters.base import Adapter
from adapters.egress import EgressGuard
from adapters.registry import load_adapters
from hub.delivery.agencies import AgencyDirectory
from hub.delivery.backpressure import BackPressure, Limits
from hub.delivery.breaker import CircuitBreaker
from hub.delivery.dispatch import Backoff, DeliveryDeps
from hub.delivery.limits import AgencyLimits
from hub.delivery.metrics import DeliveryMetrics, default_metrics
from hub.delivery.planner import SubscriptionPlanner
from hub.delivery.queue import DeliveryQueue
from hub.kit.db import Database
from hub.kit.keyfiles import load_or_create_secret
from hub.kit.redis import RedisStore
from hub.policy.guard import Decider
from hub.settings import Settings

RELEASE_HASH_KEY_FILE = "release-hash.key"


def queue_name(settings: Settings) -> str:
    """The arq queue, namespaced like every other key of this hub."""
    return f"{settings.redis_prefix}arq:queue"


@dataclass(frozen=True, slots=True)
class DeliveryKit:
    """Queue, breaker, planner, back-pressure and adapters for one process."""

    settings: Settings
    queue: DeliveryQueue
    breaker: CircuitBreaker
    metrics: DeliveryMetrics
    planner: SubscriptionPlanner
    backpressure: BackPressure
    adapters: dict[str, Adapter]

    @classmethod
    def build(cls, settings: Settings, db: Database, redis: RedisStore) -> "DeliveryKit":
        """Create (not connect) the collaborators; adapters are found by entry point."""
        metrics = default_metrics()
        queue = DeliveryQueue(redis, queue_name=queue_name(settings))
        limits = Limits(
            max_backlog=settings.backpressure_max_backlog,
            max_queue=settings.backpressure_max_queue,
            retry_after_seconds=settings.backpressure_retry_after_seconds,
        )
        return cls(
            settings=settings,
            queue=queue,
            breaker=CircuitBreaker(
                redis,
                threshold=settings.breaker_failure_threshold,
                open_seconds=settings.breaker_open_seconds,
            ),
            metrics=metrics,
            planner=SubscriptionPlanner(
                queue, metrics, attempt_limit=settings.delivery_max_attempts
            ),
            backpressure=BackPressure(db, queue, metrics, limits),
            adapters=load_adapters(egress_guard(settings)),
        )

    def worker_deps(self, db: Database, redis: RedisStore, policy: Decider) -> DeliveryDeps:
        """What the delivery job needs (worker processes only)."""
        settings = self.settings
        return DeliveryDeps(
            db=db,
            policy=policy,
            adapters=self.adapters,
            directory=AgencyDirectory(db, self.adapters),
            breaker=self.breaker,
            limits=AgencyLimits(redis),
            metrics=self.metrics,
            hash_key=release_hash_key(settings),
            backoff=Backoff(
                base_seconds=settings.delivery_backoff_base_seconds,
                max_seconds=settings.delivery_backoff_max_seconds,
                retry_after_max_seconds=settings.delivery_retry_after_max_seconds,
            ),
            lease_seconds=float(settings.delivery_job_timeout_seconds),
            auto_pause_seconds=float(settings.agency_auto_pause_seconds),
        )

    @property
    def extra_attempts(self) -> int:
        """Attempts a replayed dead letter gets."""
        return self.settings.delivery_max_attempts

    async def aclose(self) -> None:
        """Close the adapters' connections."""
        for adapter in self.adapters.values():
            await adapter.aclose()


def egress_guard(settings: Settings) -> EgressGuard:
    """Where adapters may connect: public addresses and the allow-listed networks; https
    only in production."""
    return EgressGuard.from_text(
        settings.agency_allowed_networks, require_https=settings.environment == "production"
    )


def release_hash_key(settings: Settings) -> bytes:
    """The key per-recipient hashes in released records are derived from (made on first use;
    every process of one hub must share it, or one agency would see two hashes per value)."""
    return load_or_create_secret(Path(settings.secrets_dir) / RELEASE_HASH_KEY_FILE)
