"""`GET /v1/ops/overview` figures mean what they say: the success rate is over attempts that
sent something, withheld attempts are counted apart and left out of the latency percentiles."""

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from hub.settings import Settings
from tests.hub.feeds.builders import bearer, event, upload
from tests.hub.ops.test_routes import ops_client  # noqa: F401 (the fixture)
from tests.support import EdgeNode

pytestmark = [pytest.mark.db, pytest.mark.redis]

# outcome, duration: two sends delivered, one retried, and three withheld (nothing sent).
ATTEMPTS = [
    ("delivered", 100),
    ("delivered", 300),
    ("retry", 200),
    ("withheld", 0),
    ("withheld", 1),
    ("withheld", 2),
]


async def record_attempts(settings: Settings) -> None:
    """The attempts above on the one delivery ingest queued to police-north."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        delivery = await conn.fetchval(
            """SELECT d.id FROM delivery d JOIN agency a ON a.id = d.agency_id
               WHERE a.name = 'police-north'"""
        )
        await conn.executemany(
            """INSERT INTO delivery_attempt (delivery_id, attempt, started_at, duration_ms,
                                              outcome)
               VALUES ($1, $2, now(), $3, $4)""",
            [(delivery, n, ms, outcome) for n, (outcome, ms) in enumerate(ATTEMPTS, 1)],
        )
    finally:
        await conn.close()


async def test_success_rate_and_latency_over_attempts_that_sent(
    ops_client: AsyncTestClient,  # noqa: F811
    edge_node: EdgeNode,
    settings: Settings,
) -> None:
    await upload(ops_client, edge_node, event())
    await record_attempts(settings)
    answer = await ops_client.get(
        "/v1/ops/overview", headers=bearer(ops_client.headers["x-operator"])
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    figures = next(a for a in body["agencies"] if a["agency"] == "police-north")
    assert (figures["attempts"], figures["sent"], figures["withheld"]) == (6, 3, 3)
    assert figures["delivered"] == 2
    assert figures["success_rate"] == pytest.approx(2 / 3)
    assert figures["latency_p50_ms"] == pytest.approx(200.0)  # of 100, 200, 300 only
    assert figures["latency_p95_ms"] == pytest.approx(290.0)
    assert "notes" not in body  # no stale "arrives with issue 9" note
