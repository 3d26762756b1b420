"""Readiness and ingest when PostgreSQL or Redis goes away (cut through a loopback proxy)."""

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from hub.app import create_app
from hub.settings import Settings
from tests.hub.ingest.builders import batch
from tests.support import BASE_URL, EdgeNode, TcpProxy, signed_headers

pytestmark = [pytest.mark.db, pytest.mark.redis]


def through(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host).geturl()


@pytest.fixture
async def redis_proxy(settings: Settings) -> AsyncIterator[tuple[TcpProxy, Settings]]:
    parts = urlsplit(settings.redis_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 6379)
    port = await proxy.start()
    yield proxy, msgspec.structs.replace(settings, redis_url=through(settings.redis_url, port))
    await proxy.cut()


@pytest.fixture
async def pg_proxy(settings: Settings) -> AsyncIterator[tuple[TcpProxy, Settings]]:
    parts = urlsplit(settings.database_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    port = await proxy.start()
    yield (
        proxy,
        msgspec.structs.replace(settings, database_url=through(settings.database_url, port)),
    )
    await proxy.cut()


async def test_ready_when_everything_answers(client: AsyncTestClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["postgres"] == "ok"


async def test_redis_down_makes_readyz_503_naming_redis(
    redis_proxy: tuple[TcpProxy, Settings],
) -> None:
    proxy, settings = redis_proxy
    async with AsyncTestClient(app=create_app(settings), base_url=BASE_URL) as client:
        first = await client.get("/readyz")
        assert first.status_code == 200, first.text
        await proxy.cut()
        response = await client.get("/readyz")
        assert (await client.get("/healthz")).status_code == 200
    assert response.status_code == 503
    body = response.json()
    assert body["type"] == "/problems/not_ready"
    assert body["checks"]["redis"].startswith("failing")
    assert body["checks"]["postgres"] == "ok"
    assert "redis" in body["detail"]


async def test_ingest_fails_closed_with_503_when_redis_is_down(
    redis_proxy: tuple[TcpProxy, Settings], edge_node: EdgeNode
) -> None:
    proxy, settings = redis_proxy
    await proxy.cut()
    body = batch()
    async with AsyncTestClient(app=create_app(settings), base_url=BASE_URL) as client:
        response = await client.post(
            "/v1/edge/events",
            content=body,
            headers=signed_headers(edge_node.signer, path="/v1/edge/events", body=body),
        )
    # Without Redis the nonce cannot be checked: refuse rather than risk accepting a replay.
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert response.json()["type"] == "/problems/unavailable"


async def test_postgres_down_makes_readyz_503_naming_postgres(
    pg_proxy: tuple[TcpProxy, Settings],
) -> None:
    proxy, settings = pg_proxy
    async with AsyncTestClient(app=create_app(settings), base_url=BASE_URL) as client:
        assert (await client.get("/readyz")).status_code == 200
        await proxy.cut()
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["postgres"].startswith("failing")


async def test_openapi_schema_is_served(client: AsyncTestClient) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/v1/edge/events", "/v1/edge/media/{sha256}", "/readyz", "/healthz"} <= set(paths)


async def test_ingest_answers_503_and_stores_nothing_when_postgres_drops(
    pg_proxy: tuple[TcpProxy, Settings], edge_node: EdgeNode, settings: Settings
) -> None:
    proxy, proxied = pg_proxy
    body = batch()
    async with AsyncTestClient(app=create_app(proxied), base_url=BASE_URL) as client:
        await proxy.cut()
        response = await client.post(
            "/v1/edge/events",
            content=body,
            headers=signed_headers(edge_node.signer, path="/v1/edge/events", body=body),
        )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["type"] == "/problems/unavailable"
    conn = await asyncpg.connect(settings.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM detection_event") == 0
    finally:
        await conn.close()
