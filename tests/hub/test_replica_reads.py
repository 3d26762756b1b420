"""Reads that tolerate staleness on the replica (ADR 0016): the decision log, the ops
overview, the incident list, the retention report, the agency list with its delivery counts
and the delivery listings answer from `HUB_DATABASE_REPLICA_URL` while it is fresh, and from
the primary when it is absent (feed pages: tests/hub/feeds/test_replica.py).

A second migrated database on the same server stands in for the replica: it is not in
recovery, so it counts as fresh, and rows seeded only there show which one answered."""

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from hub.app import create_app
from hub.kit.db import drop_database, with_database
from hub.runtime import Services
from hub.settings import Settings
from tests.hub.audit.test_routes import bearer
from tests.hub.identity.builders import admin_token_fields
from tests.hub.identity.test_cameras import issue
from tests.support import BASE_URL

pytestmark = [pytest.mark.db, pytest.mark.redis]

ABSENT = "postgresql://postgres@127.0.0.1:1/postgres"  # nothing listens on port 1
DECISION = "replica-only-decision"
REPLICA_EVENT = uuid.UUID("5e1f0000-0000-4000-8000-0000000e0e17")
DELIVERY = uuid.UUID("5e1f0000-0000-4000-8000-00000000dead")


@pytest.fixture(scope="module")
def replica_url(base_settings: Settings) -> Iterator[str]:
    """A second database migrated with the real `hub migrate`, seeded with rows the primary
    does not have; dropped afterwards."""
    url = with_database(base_settings.database_url, f"hubtest_{uuid.uuid4().hex[:12]}")
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli.main", "migrate"],
        env={**os.environ, "HUB_DATABASE_URL": url},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    asyncio.run(_seed(url))
    yield url
    asyncio.run(drop_database(url))


async def _seed(url: str) -> None:
    """A two-year-old deny for `replica-reader`, one open incident, an agency with one dead
    letter, one stored event and one legal hold, only on the replica."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """INSERT INTO policy_decisions
                   (decision_id, at, entrypoint, revision, latency_us, input, result)
               VALUES ($1, $2, 'hub/authz/decision', 'r-replica', 7,
                       '{"subject": {"id": "replica-reader"}}', '{"allow": false}')""",
            DECISION,
            datetime.now(UTC) - timedelta(days=730),
        )
        await conn.execute(
            "INSERT INTO incident (id, title, created_by) VALUES ($1, 'seen on the replica', 'x')",
            uuid.uuid4(),
        )
        agency = uuid.uuid4()
        await conn.execute(
            """INSERT INTO agency (id, name, adapter_kind, endpoint)
               VALUES ($1, 'replica-agency', 'rest', 'http://127.0.0.1:9/')""",
            agency,
        )
        await conn.execute(
            """INSERT INTO delivery (id, event_pk, event_captured_at, agency_id, status,
                                     attempts, dead_at, last_error)
               VALUES ($1, 1, now(), $2, 'dead', 3, now(), 'seen on the replica')""",
            DELIVERY,
            agency,
        )
        await conn.execute(
            """INSERT INTO detection_event (node_id, event_id, captured_at, camera_id, classes,
                                            max_confidence, content_sha256, payload)
               VALUES ($1, $2, now(), 'replica-cam', '{person}', 0.9, '\\x00',
                       '{"camera_id": "replica-cam", "detections": []}')""",
            uuid.uuid4(),
            REPLICA_EVENT,
        )
        await conn.execute(
            """INSERT INTO legal_hold (id, reason, event_ids, created_by)
               VALUES ($1, 'held on the replica', $2, 'x')""",
            uuid.uuid4(),
            [REPLICA_EVENT],
        )
    finally:
        await conn.close()


Client = tuple[AsyncTestClient, dict[str, str]]


async def _client(settings: Settings, replica: str, tokens: Path) -> AsyncIterator[Client]:
    """The app reading from `replica`, and an admin's headers (admins use issued tokens)."""
    admin = issue(tokens, "ada", roles=["admin"], **admin_token_fields())
    changed = msgspec.structs.replace(
        settings, database_replica_url=replica, api_tokens_file=str(tokens)
    )
    async with AsyncTestClient(app=create_app(changed), base_url=BASE_URL) as test_client:
        yield test_client, dict(admin)


@pytest.fixture
async def on_replica(settings: Settings, replica_url: str, tmp_path: Path) -> AsyncIterator[Client]:
    """The app with a fresh replica."""
    async for pair in _client(settings, replica_url, tmp_path / "tokens.toml"):
        yield pair


@pytest.fixture
async def replica_absent(settings: Settings, tmp_path: Path) -> AsyncIterator[Client]:
    """The app with a replica URL where nothing answers."""
    async for pair in _client(settings, ABSENT, tmp_path / "tokens.toml"):
        yield pair


async def _reads(pair: Client, services: Services) -> dict[str, object]:
    """What each moved read shows, as seen through the routes."""
    client, admin = pair
    officer = await bearer(client, services, "olga", "compliance_officer")

    async def body(path: str, headers: dict[str, str], **params: str) -> Any:
        answer = await client.get(path, params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        return answer.json()

    searched = await body("/v1/decisions/search", officer, recipient="replica-reader")
    report = await body("/v1/admin/retention/report", admin)
    overview = await body("/v1/ops/overview", officer)
    incidents = await body("/v1/incidents", officer)
    looked_up = await client.get(f"/v1/decisions/{DECISION}", headers=officer)
    agencies = await body("/v1/admin/agencies", admin)
    dead = await body("/v1/admin/deliveries", admin)
    delivery = await client.get(f"/v1/admin/deliveries/{DELIVERY}", headers=admin)
    candidates = await body("/v1/incidents/candidates", officer)
    holds = await body("/v1/holds", officer)
    return {
        "searched": [d["decision_id"] for d in searched["decisions"]],
        "looked_up": looked_up.status_code,
        "old_decisions": {c["data_class"]: c["rows"] for c in report["classes"]}["decision_log"],
        "open_incidents": overview["open_incidents"],
        "incidents": [i["title"] for i in incidents],
        "agencies": {a["agency"]["name"]: a["counts"] for a in agencies},
        "dead": [d["last_error"] for d in dead],
        "delivery": delivery.status_code,
        "candidates": [c["event_id"] for c in candidates],
        "holds": [h["reason"] for h in holds],
    }


async def test_reads_answer_from_a_fresh_replica(on_replica: Client, services: Services) -> None:
    assert await _reads(on_replica, services) == {
        "searched": [DECISION],
        "looked_up": 200,
        "old_decisions": 1,
        "open_incidents": 1,
        "incidents": ["seen on the replica"],
        "agencies": {"replica-agency": {"dead": 1}},
        "dead": ["seen on the replica"],
        "delivery": 200,
        "candidates": [str(REPLICA_EVENT)],
        "holds": ["held on the replica"],
    }


async def test_reads_fall_back_to_the_primary_when_the_replica_is_absent(
    replica_absent: Client, services: Services
) -> None:
    assert await _reads(replica_absent, services) == {
        "searched": [],
        "looked_up": 404,
        "old_decisions": 0,
        "open_incidents": 0,
        "incidents": [],
        "agencies": {},
        "dead": [],
        "delivery": 404,
        "candidates": [],
        "holds": [],
    }


async def test_a_replay_reads_the_primary(on_replica: Client, services: Services) -> None:
    # A replay writes an audit entry about what it read, so it never reads the replica: the
    # decision seeded only there is unknown to it.
    client, _ = on_replica
    officer = await bearer(client, services, "rita", "compliance_officer")
    replay = await client.post(f"/v1/decisions/{DECISION}/replay", headers=officer)
    assert replay.status_code == 404
