"""One agency's open rows cost another agency nothing in the ledger's hot statements
(issue 16, migration 0023): a claim reads only its agency's due rows, and back-pressure counts
only active agencies' rows."""

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from hub.delivery import repository
from hub.delivery.repository.ledger import _CLAIM_BATCH, _FINISH_BATCH
from hub.settings import Settings

pytestmark = pytest.mark.db

_AGENCY = """INSERT INTO agency (id, name, adapter_kind, endpoint, status)
              VALUES ($1, $2, 'rest', 'http://127.0.0.1/rest', $3)"""
# `n` rows of one agency: `status`, due `due_seconds` from now (negative: already due).
_ROWS = """INSERT INTO delivery (id, event_pk, event_captured_at, agency_id, status, attempts,
                                 next_attempt_at)
           SELECT gen_random_uuid(), $2 + g, now(), $1, $3, 1,
                  now() + make_interval(secs => $4) + g * interval '1 ms'
             FROM generate_series(1, $5) AS g"""


@pytest.fixture
async def conn(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(settings.database_url)
    yield connection
    await connection.close()


async def add_agency(conn: asyncpg.Connection, status: str) -> UUID:
    agency = uuid4()
    await conn.execute(_AGENCY, agency, f"agency-{agency.hex[:8]}", status)
    return agency


async def add_rows(
    conn: asyncpg.Connection, agency: UUID, *, n: int, status: str, due_seconds: float, first: int
) -> None:
    await conn.execute(_ROWS, agency, first, status, due_seconds, n)


def nodes_of(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A JSON plan node and every node under it."""
    yield node
    for child in node.get("Plans", []):
        yield from nodes_of(child)


def pick_scans(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The scans of the claim's `picked` step: how it found the agency's due rows."""
    (picked,) = [n for n in nodes_of(plan) if n.get("Subplan Name") == "CTE picked"]
    return [n for n in nodes_of(picked) if n["Node Type"].endswith("Scan")]


async def test_a_claim_reads_only_its_own_agencys_due_rows(conn: asyncpg.Connection) -> None:
    # The shape the isolation bench left behind: a healthy agency with a long delivered
    # history and a few hundred open rows, beside 3,000 older due rows of a disabled agency.
    # Statistics over the whole table make the healthy agency look like most of it, which is
    # what made the planner walk a global due index through the other agency's rows.
    healthy, disabled = await add_agency(conn, "active"), await add_agency(conn, "disabled")
    await add_rows(conn, healthy, n=20_000, status="delivered", due_seconds=-120, first=0)
    await add_rows(conn, disabled, n=3_000, status="pending", due_seconds=-60, first=100_000)
    await add_rows(conn, healthy, n=300, status="pending", due_seconds=-1, first=200_000)
    await conn.execute("ANALYZE delivery")
    claim = conn.transaction()  # EXPLAIN ANALYZE runs the claim: roll it back
    await claim.start()
    try:
        explained = await conn.fetchval(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + _CLAIM_BATCH, healthy, 200, 30.0
        )
    finally:
        await claim.rollback()
    plan = json.loads(explained)
    picks = pick_scans(plan[0]["Plan"])
    assert [s.get("Index Name") for s in picks] == ["delivery_agency_due_idx"]
    assert picks[0].get("Rows Removed by Filter", 0) == 0
    assert picks[0]["Actual Rows"] == 200


async def test_a_finish_reads_only_its_own_agencys_rows_in_flight(
    conn: asyncpg.Connection,
) -> None:
    # Statistics taken while nothing was in flight; then a slow agency's rows are held by its
    # sends while a healthy agency finishes a batch of 200.
    healthy, slow = await add_agency(conn, "active"), await add_agency(conn, "active")
    await add_rows(conn, healthy, n=200, status="pending", due_seconds=-1, first=0)
    await add_rows(conn, slow, n=2_000, status="pending", due_seconds=-1, first=10_000)
    await conn.execute("ANALYZE delivery")
    await conn.execute("UPDATE delivery SET status = 'in_flight'")
    ids = [
        r["id"] for r in await conn.fetch("SELECT id FROM delivery WHERE agency_id = $1", healthy)
    ]
    n = len(ids)
    columns = [
        ids, ["delivered"] * n, [1] * n, [datetime.now(UTC)] * n, [5] * n, ["delivered"] * n,
        [200] * n, [None] * n, ["decision"] * n, [0.0] * n, ['{"status_code": 200}'] * n,
    ]  # fmt: skip
    finish = conn.transaction()
    await finish.start()
    try:
        explained = await conn.fetchval(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + _FINISH_BATCH, *columns, healthy
        )
    finally:
        await finish.rollback()
    (update,) = [
        n for n in nodes_of(json.loads(explained)[0]["Plan"]) if n.get("Operation") == "Update"
    ]
    scans = [
        n
        for n in nodes_of(update)
        if n.get("Relation Name") == "delivery" and n["Node Type"].endswith("Scan")
    ]
    read = sum(n["Actual Rows"] * n["Actual Loops"] for n in scans)
    assert update["Actual Rows"] == 200
    assert read <= 200  # none of the slow agency's 2,000 rows in flight


async def test_backpressure_counts_only_active_agencies_due_rows(conn: asyncpg.Connection) -> None:
    active = await add_agency(conn, "active")
    paused, disabled = await add_agency(conn, "paused"), await add_agency(conn, "disabled")
    await add_rows(conn, active, n=3, status="pending", due_seconds=-10, first=0)
    await add_rows(conn, active, n=4, status="retrying", due_seconds=600, first=10)  # not due
    await add_rows(conn, paused, n=5, status="pending", due_seconds=-3_600, first=100)
    await add_rows(conn, disabled, n=7, status="retrying", due_seconds=-7_200, first=200)

    due, oldest = await repository.backlog(conn, cap=1_000)

    assert due == 3
    assert 9 <= oldest < 60  # the active agency's rows, not the hour-old waiting ones
    assert (await repository.backlog(conn, cap=2))[0] == 2  # still bounded by the cap
