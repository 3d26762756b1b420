"""PostgreSQL lost under load and back: the API answers 503 problem+json with Retry-After
while the database is unreachable, recovers without a restart once it returns, and every
event it acknowledged is stored exactly once; the refused batches, sent again, are stored."""

import asyncio
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import asyncpg
import httpx
import msgspec
import pytest

from hub.app import create_app
from hub.settings import Settings
from tests.faults.kit import RestorableProxy, through
from tests.hub.ingest.builders import batch, event
from tests.support import BASE_URL, EdgeNode, ThreadedServer, signed_headers

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.commits, pytest.mark.slow]

EVENTS = "/v1/edge/events"
POSTERS = 3


@pytest.fixture
def pg_proxy(settings: Settings) -> Iterator[RestorableProxy]:
    parts = urlsplit(settings.database_url)
    proxy = RestorableProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    proxy.start()
    yield proxy
    proxy.close()


@pytest.mark.timeout(120)
async def test_postgres_lost_under_load_answers_503_and_recovers_without_restart(
    settings: Settings, edge_node: EdgeNode, pg_proxy: RestorableProxy
) -> None:
    proxied = msgspec.structs.replace(
        settings,
        database_url=through(settings.database_url, pg_proxy.port),
        public_base_url=BASE_URL,
        # Three posters retrying through the outage from one node would trip the per-client
        # rate limit (600/min), which is not what this test is about.
        ratelimit_enabled=False,
    )
    accepted: set[str] = set()
    refused: list[list[dict[str, object]]] = []
    unexpected: list[str] = []
    phase = {"name": "before"}
    answers: dict[str, dict[int, int]] = {"before": {}, "cut": {}, "after": {}}

    async def post(http: httpx.AsyncClient, events: list[dict[str, object]]) -> httpx.Response:
        body = batch(*events)
        headers = signed_headers(edge_node.signer, path=EVENTS, body=body)
        return await http.post(EVENTS, content=body, headers=headers)

    async def poster(http: httpx.AsyncClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            events = [event() for _ in range(10)]
            at = phase["name"]
            response = await post(http, events)
            seen = answers[at]
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            if response.status_code == 200:
                assert response.json()["accepted"] == len(events), response.text
                accepted.update(str(e["event_id"]) for e in events)
            elif response.status_code == 503:
                assert response.headers["content-type"].startswith("application/problem+json")
                assert int(response.headers["retry-after"]) > 0
                assert response.json()["type"].endswith("/unavailable"), response.text
                refused.append(events)
            else:
                unexpected.append(f"{response.status_code} {response.text[:200]}")
            await asyncio.sleep(0.02)

    with ThreadedServer(create_app(proxied)) as api:
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
            assert (await http.get("/readyz")).status_code == 200
            stop = asyncio.Event()
            posters = [asyncio.create_task(poster(http, stop)) for _ in range(POSTERS)]
            await asyncio.sleep(2.0)
            phase["name"] = "cut"
            await asyncio.to_thread(pg_proxy.cut)
            await asyncio.sleep(3.0)
            ready_during = await http.get("/readyz")
            phase["name"] = "after"
            await asyncio.to_thread(pg_proxy.restore)
            restored_at = time.monotonic()
            # Recovery without restart: acknowledged batches again within seconds.
            while answers["after"].get(200, 0) < 5:
                assert time.monotonic() - restored_at < 30, f"no recovery: {answers}"
                await asyncio.sleep(0.1)
            stop.set()
            await asyncio.gather(*posters)
            assert (await http.get("/readyz")).status_code == 200
            # The edge sends what was refused again (freshly signed): now it is stored.
            for events in refused:
                response = await post(http, events)
                assert response.status_code == 200, response.text
                assert response.json()["accepted"] == len(events), response.text

    assert not unexpected, unexpected
    assert ready_during.status_code == 503
    assert ready_during.json()["checks"]["postgres"].startswith("failing")
    assert answers["before"].get(200, 0) > 0
    assert answers["cut"].get(503, 0) > 0, answers
    assert refused, answers
    resent = {str(e["event_id"]) for events in refused for e in events}
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch("SELECT event_id::text AS id FROM detection_event")
    finally:
        await conn.close()
    stored = [r["id"] for r in rows]
    assert len(stored) == len(set(stored)), "an event was stored twice"
    assert set(stored) == accepted | resent
