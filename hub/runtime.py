"""The clients one hub process shares: settings, PostgreSQL, Redis, blob storage, policy.

Built once at start-up (API lifespan, worker start-up, CLI command) and passed in;
there is no module-level state.
"""

from dataclasses import dataclass
from pathlib import Path

from litestar.di import NamedDependency

from hub.audit import AuditAppender
from hub.delivery.kit import DeliveryKit
from hub.feeds import FeedKit
from hub.identity.authn import AuthnDeps
from hub.identity.oauth import IdentityKit
from hub.identity.tokens import TokenStore
from hub.ingest.partitions import PartitionStatistics
from hub.kit.db import Database
from hub.kit.redis import RedisStore
from hub.kit.storage import BlobStore, LocalBlobStore
from hub.policy.bundles.watcher import BundleWatcher, build_watcher
from hub.policy.decision_log import DecisionLog
from hub.policy.service import PolicyService
from hub.retention.kit import RetentionKit
from hub.settings import Settings
from hub.tables import ALL_TABLES


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a use case may need from outside its own domain."""

    settings: Settings
    db: Database
    redis: RedisStore
    media: BlobStore
    tokens: TokenStore
    decisions: DecisionLog
    policy: PolicyService
    delivery: DeliveryKit
    identity: IdentityKit  # OAuth/JWT: signing keys, key ring and revocation caches
    feeds: FeedKit  # agency feeds: notice bus, live subscribers, agency view
    retention: RetentionKit  # PII key ring and the media disk-pressure guard
    partitions: PartitionStatistics  # ingest's watch on event partitions' planner statistics
    audit: AuditAppender  # group commit of audit entries with no transaction of their own

    @property
    def authn(self) -> AuthnDeps:
        """Collaborators of authentication."""
        return AuthnDeps(
            db=self.db,
            redis=self.redis,
            tokens=self.tokens,
            max_skew_seconds=self.settings.signature_max_skew_seconds,
            identity=self.identity,
        )

    @property
    def public_base_url(self) -> str:
        """The base URL edge nodes sign (empty: as the request arrived)."""
        return self.settings.public_base_url


def build_services(settings: Settings) -> Services:
    """Create (not yet connect) the clients for these settings. Policy starts with no engine
    (every decision fails closed) until `start_policy` loads the active bundle."""
    db = Database.from_settings(settings)
    audit = AuditAppender.from_settings(settings, db)
    decisions = DecisionLog.from_settings(db, settings)
    redis = RedisStore.from_settings(settings)
    policy = PolicyService(
        None,
        sink=decisions,
        eval_budget_ms=settings.policy_eval_timeout_ms,
        cache_size=settings.policy_cache_size,
    )
    return Services(
        settings=settings,
        db=db,
        redis=redis,
        media=LocalBlobStore(Path(settings.media_dir)),
        tokens=TokenStore(Path(settings.api_tokens_file)),
        decisions=decisions,
        policy=policy,
        delivery=DeliveryKit.build(settings, db, redis),
        identity=IdentityKit.build(settings, db, redis, audit=audit),
        feeds=FeedKit(settings, db=db, redis=redis, policy=policy, audit=audit),
        retention=RetentionKit(settings),
        partitions=PartitionStatistics(db),
        audit=audit,
    )


async def start_services(services: Services) -> None:
    """Open the database pool and bind the Piccolo tables to it (Redis connects lazily)."""
    await services.db.start(ALL_TABLES)


async def start_policy(services: Services, *, role: str) -> BundleWatcher:
    """Start the decision log and load the active bundle (or the default one), then follow
    activations; the caller stops the returned watcher before `stop_policy`."""
    await services.decisions.start()
    watcher = build_watcher(
        services.settings, db=services.db, redis=services.redis, policy=services.policy, role=role
    )
    await watcher.start()
    return watcher


async def stop_policy(services: Services, watcher: BundleWatcher) -> None:
    """Stop following activations and write every buffered decision."""
    await watcher.stop()
    await services.decisions.stop()


async def stop_services(services: Services) -> None:
    """Close every client (the audit appender after the users that may still append, and
    before the pool its last INSERTs need)."""
    await services.feeds.aclose()
    await services.delivery.aclose()
    await services.audit.aclose()
    await services.db.stop()
    await services.redis.close()


# How route handlers ask Litestar for the shared services (injected by name).
ServicesDep = NamedDependency[Services]
