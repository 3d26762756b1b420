"""Feed pages on a lagging replica (ADR 0016, "Feed pages on a replica"): the replica answers
only inside the offer range its own snapshot covers, so a cursor walk sees every event once
even while the replica is behind the primary.

A second migrated database stands in for the replica: it is not in recovery (so it counts
as fresh) and holds a copy of the primary's feed as it was a while ago, with each event's
`model_version` changed so an item shows which server it was read from."""

import asyncio
import io
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from hub.app import create_app
from hub.kit.db import drop_database, with_database
from hub.settings import Settings
from tests.hub.feeds.builders import NORTH_CAMERA, bearer, event, upload
from tests.support import BASE_URL, EdgeNode

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.commits]

# Parents before children (offers name an audience and a feed position).
FEED_TABLES = ("detection_event", "feed_entry", "feed_audience", "feed_offer")
ON_REPLICA = "read-on-the-replica"


@pytest.fixture(scope="module")
def replica_url(base_settings: Settings) -> Iterator[str]:
    """An empty database migrated with the real `hub migrate`; dropped afterwards."""
    url = with_database(base_settings.database_url, f"hubtest_{uuid.uuid4().hex[:12]}")
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli.main", "migrate"],
        env={**os.environ, "HUB_DATABASE_URL": url},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    yield url
    asyncio.run(drop_database(url))


async def copy_feed(primary: str, replica: str) -> None:
    """Make the replica hold the primary's feed as it is now (marked as read there)."""
    source, target = await asyncpg.connect(primary), await asyncpg.connect(replica)
    try:
        await target.execute(f"TRUNCATE {', '.join(FEED_TABLES)}, feed_pending CASCADE")
        for table in FEED_TABLES:
            buffer = io.BytesIO()
            # A query, not copy_from_table: PostgreSQL copies a partitioned table only so.
            query = f"SELECT * FROM {table}"  # noqa: S608 - names from FEED_TABLES above
            await source.copy_from_query(query, output=buffer, format="binary")
            buffer.seek(0)
            await target.copy_to_table(table, source=buffer, format="binary")
        await target.execute(
            "UPDATE detection_event SET payload = jsonb_set(payload, '{model_version}', $1)",
            msgspec.json.encode(ON_REPLICA).decode(),
        )
    finally:
        await source.close()
        await target.close()


@pytest.fixture
async def replica_client(
    feed_settings: Settings, agencies: None, tokens: dict[str, str], replica_url: str
) -> AsyncIterator[AsyncTestClient]:
    """The app reading stale-tolerant data from `replica_url`."""
    changed = msgspec.structs.replace(feed_settings, database_replica_url=replica_url)
    async with AsyncTestClient(app=create_app(changed), base_url=BASE_URL) as client:
        yield client


async def walk(client: AsyncTestClient, token: str, *, limit: int) -> list[list[dict[str, Any]]]:
    """Every page from the start of the feed until one comes back empty."""
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    for _ in range(20):
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        answer = await client.get("/v1/feeds/events", params=params, headers=bearer(token))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        if not body["items"]:
            return pages
        pages.append(body["items"])
        cursor = body["next_cursor"]
    raise AssertionError("the walk did not end")


async def test_a_walk_on_a_lagging_replica_sees_every_event_once(
    feed_client: AsyncTestClient,
    replica_client: AsyncTestClient,
    edge_node: EdgeNode,
    tokens: dict[str, str],
    settings: Settings,
    replica_url: str,
) -> None:
    first = [event(NORTH_CAMERA) for _ in range(3)]
    await upload(feed_client, edge_node, *first)
    # A first reader makes the audience's offers cover positions 1..3 on the primary.
    assert len((await walk(feed_client, tokens["police"], limit=10))[0]) == 3
    await copy_feed(settings.database_url, replica_url)  # the replica stops here
    later = [event(NORTH_CAMERA) for _ in range(3)]
    await upload(feed_client, edge_node, *later)

    pages = await walk(replica_client, tokens["police"], limit=2)

    seen = [item["event_id"] for items in pages for item in items]
    # Once each; positions follow commit order, not the order inside a batch.
    assert sorted(seen[:3]) == sorted(e["event_id"] for e in first)
    assert sorted(seen[3:]) == sorted(e["event_id"] for e in later)
    where = [[item["record"]["model_version"] for item in items] for items in pages]
    # Pages inside the replica's range come from it; past its range the primary answers.
    assert where == [[ON_REPLICA, ON_REPLICA], [ON_REPLICA], ["1.0", "1.0"], ["1.0"]]


async def test_the_primary_answers_when_the_replica_has_nothing_past_the_cursor(
    feed_client: AsyncTestClient,
    replica_client: AsyncTestClient,
    edge_node: EdgeNode,
    tokens: dict[str, str],
    settings: Settings,
    replica_url: str,
) -> None:
    await copy_feed(settings.database_url, replica_url)  # an empty feed
    fresh = [event(NORTH_CAMERA) for _ in range(2)]
    await upload(feed_client, edge_node, *fresh)

    pages = await walk(replica_client, tokens["police"], limit=10)

    assert [[item["record"]["model_version"] for item in items] for items in pages] == [
        ["1.0", "1.0"]
    ]
