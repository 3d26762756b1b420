"""The clients one hub process shares: settings, PostgreSQL, Redis, blob storage.

Built once at start-up (API lifespan, worker start-up, CLI command) and passed in;
there is no module-level state.
"""

from dataclasses import dataclass
from pathlib import Path

from litestar.di import NamedDependency

from hub.identity.authn import AuthnDeps
from hub.identity.tokens import TokenStore
from hub.kit.db import Database
from hub.kit.redis import RedisStore
from hub.kit.storage import BlobStore, LocalBlobStore
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

    @property
    def authn(self) -> AuthnDeps:
        """Collaborators of authentication."""
        return AuthnDeps(
            db=self.db,
            redis=self.redis,
            tokens=self.tokens,
            max_skew_seconds=self.settings.signature_max_skew_seconds,
        )


def build_services(settings: Settings) -> Services:
    """Create (not yet connect) the clients for these settings."""
    return Services(
        settings=settings,
        db=Database(
            settings.database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        ),
        redis=RedisStore(settings.redis_url, prefix=settings.redis_prefix),
        media=LocalBlobStore(Path(settings.media_dir)),
        tokens=TokenStore(Path(settings.api_tokens_file)),
    )


async def start_services(services: Services) -> None:
    """Open the database pool and bind the Piccolo tables to it (Redis connects lazily)."""
    await services.db.start(ALL_TABLES)


async def stop_services(services: Services) -> None:
    """Close every client."""
    await services.db.stop()
    await services.redis.close()


# How route handlers ask Litestar for the shared services (injected by name).
ServicesDep = NamedDependency[Services]
