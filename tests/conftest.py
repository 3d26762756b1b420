"""Test fixtures on real services: a fresh PostgreSQL database per run (real migrations),
a private Redis key prefix per run, and a real Litestar app per test.

The database and keys are created here and removed here; nothing else on the servers is
touched. URLs come from HUB_DATABASE_URL / HUB_REDIS_URL (set by `make test`).
"""

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import msgspec
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from edge.signing import RequestSigner, generate_key, public_key_pem
from hub.app import create_app
from hub.identity import NodeCreate, add_node
from hub.kit.db import drop_database, with_database
from hub.runtime import Services, build_services, start_services, stop_services
from hub.settings import Settings, load_settings
from tests.support import BASE_URL, TEST_CAMERAS, EdgeNode

TABLES = (
    "camera",
    "edge_node",
    "agency",
    "detection_event",
    "media_object",
    "media_region",
    "delivery",
    "delivery_attempt",
    "audit_log",
    "audit_tree",
    "audit_node",
    "audit_checkpoint",
    "policy_decisions",
    "policy_bundles",
    "oauth_client",
    "console_user",
    "refresh_token",
    "jwt_signing_key",
    "feed_pending",
    "feed_entry",
    "feed_offer",
    "feed_audience",
    "feed_ack",
    "legal_hold",
    "pii_attribute",
    "pii_subject_key",
    "retention_run",
    "incident_event",
    "incident_note",
    "incident",
)


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    """Settings from the environment, as `make test` exported them."""
    return load_settings()


@pytest.fixture(scope="session")
def database_url(base_settings: Settings) -> Iterator[str]:
    """A database of our own, migrated with the real `hub migrate`; dropped afterwards."""
    name = f"hubtest_{uuid.uuid4().hex[:12]}"
    url = with_database(base_settings.database_url, name)
    env = {**os.environ, "HUB_DATABASE_URL": url}
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli.main", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.exit(f"hub migrate failed for the test database:\n{done.stderr}", returncode=3)
    yield url
    import asyncio

    asyncio.run(drop_database(url))


@pytest.fixture(scope="session")
def settings(
    base_settings: Settings, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """Test settings: our database, our Redis prefix, media in a temporary folder."""
    return msgspec.structs.replace(
        base_settings,
        database_url=database_url,
        redis_prefix=f"hubtest:{uuid.uuid4().hex[:12]}:",
        media_dir=str(tmp_path_factory.mktemp("media")),
        secrets_dir=str(tmp_path_factory.mktemp("keys")),
        environment="test",
        db_pool_min=1,
        db_pool_max=10,
        log_json=False,
        log_level="warning",
        # Receivers in tests listen on loopback; agency endpoints reach it only when allowed.
        agency_allowed_networks="127.0.0.1/32",
    )


@pytest.fixture(autouse=True)
async def _clean(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Empty our tables and Redis keys after every test that used them."""
    yield
    if "settings" not in request.fixturenames:
        return
    settings: Settings = request.getfixturevalue("settings")
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(f"TRUNCATE {', '.join(TABLES)}")
    finally:
        await conn.close()
    await delete_prefix(settings.redis_url, settings.redis_prefix)


async def delete_prefix(redis_url: str, prefix: str) -> None:
    """Delete only the keys under our prefix."""
    redis = Redis.from_url(redis_url)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    """Connected services for calling use cases directly."""
    built = build_services(settings)
    await start_services(built)
    yield built
    await stop_services(built)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient]:
    """An HTTP client on a real app (lifespan run, real PostgreSQL and Redis)."""
    async with AsyncTestClient(app=create_app(settings), base_url=BASE_URL) as test_client:
        yield test_client


@pytest.fixture
async def edge_node(services: Services) -> EdgeNode:
    """A registered, active edge node owning the test cameras."""
    key = generate_key()
    node = await add_node(
        services.db,
        NodeCreate(
            name=f"node-{uuid.uuid4().hex[:6]}",
            public_key=public_key_pem(key),
            cameras=list(TEST_CAMERAS),
        ),
        actor="test",
    )
    return EdgeNode(node=node, signer=RequestSigner(key_id=str(node.id), private_key=key))
