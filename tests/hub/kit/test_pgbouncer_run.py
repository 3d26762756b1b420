"""The whole hub behind a real PgBouncer in transaction mode: `hub api` and `hub worker` as
real processes with HUB_DATABASE_URL through a private PgBouncer (two server connections)
and HUB_DB_STATEMENT_CACHE_SIZE=0 take signed batches, deliver them to a loopback receiver,
serve a feed page and seal the audit log; PgBouncer's admin console shows it pooled them.
`hub migrate` and its --check run through it too, on a database of their own. A run with
asyncpg's default statement cache shows what the setting is for. Skips, saying why, when
pgbouncer is not installed (scripts/pgbouncer.sh installs it)."""

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import msgspec
import pytest

from hub.kit.db import drop_database, with_database
from hub.runtime import Services
from hub.settings import Settings
from tests.hub.delivery.harness import EVENTS, Receivers, quick, register, statuses, wait_until
from tests.hub.delivery.test_end_to_end import plate_event
from tests.hub.feeds.builders import agency_token, bearer
from tests.hub.ingest.builders import batch
from tests.hub.kit.bouncer import Bouncer, running_bouncer
from tests.hub.observability.processes import HubProcess
from tests.support import BASE_URL, EdgeNode, signed_headers

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.commits, pytest.mark.slow]

SERVER_CONNECTIONS = 2
BATCHES, PER_BATCH = 6, 4
# What asyncpg says when a named statement is missing on, or already taken on, the server
# connection PgBouncer handed out.
STATEMENT_ERRORS = ("prepared statement", "InvalidSQLStatementName", "DuplicatePreparedStatement")


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[Receivers]:
    found = Receivers(tmp_path)
    found.start()
    yield found
    found.stop()


@pytest.fixture
def bouncer(database_url: str) -> Iterator[Bouncer]:
    with running_bouncer(database_url, pool_size=SERVER_CONNECTIONS) as running:
        yield running


def _run_settings(settings: Settings, bouncer: Bouncer, tmp_path: Path, cache: int) -> Settings:
    return msgspec.structs.replace(
        quick(settings),
        database_url=bouncer.url,
        db_statement_cache_size=cache,
        log_json=True,
        log_level="info",
        metrics_dir=str(tmp_path / "metrics"),
        api_tokens_file=str(tmp_path / "tokens.toml"),
        shutdown_grace_seconds=0.2,
        audit_checkpoint_seconds=1,
        public_base_url=BASE_URL,  # what the test signer signs
    )


async def _post_batches(api: HubProcess, node: EdgeNode) -> list[int]:
    """BATCHES signed batches at once (clients contend for the two server connections),
    then the first one again (a re-send); the status of each answer."""
    bodies = [
        batch(*(plate_event("demo-cam-1", f"PB-{b}{i}") for i in range(PER_BATCH)))
        for b in range(BATCHES)
    ]
    async with httpx.AsyncClient(base_url=api.url, timeout=20) as http:

        async def post(body: bytes) -> int:
            headers = signed_headers(node.signer, path=EVENTS, body=body)
            return (await http.post(EVENTS, content=body, headers=headers)).status_code

        codes = list(await asyncio.gather(*(post(body) for body in bodies)))
        codes.append(await post(bodies[0]))
    return codes


async def _feed_items(api: HubProcess, token: str) -> int:
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
        response = await http.get("/v1/feeds/events", params={"limit": 100}, headers=bearer(token))
    assert response.status_code == 200, response.text
    return len(response.json()["items"])


async def _audit(settings: Settings) -> tuple[int, int, int]:
    """(entries, sealed entries, size of the newest checkpoint), read directly."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        row = await conn.fetchrow(
            """SELECT count(*) AS entries, count(leaf_index) AS sealed,
                      (SELECT coalesce(max(tree_size), 0) FROM audit_checkpoint) AS checkpoint
               FROM audit_log"""
        )
    finally:
        await conn.close()
    assert row is not None
    return int(row["entries"]), int(row["sealed"]), int(row["checkpoint"])


async def _advisory_locks(settings: Settings) -> int:
    """Advisory locks held in our database now (a session lock left on a pooled server
    connection would stay there for whoever gets that connection next)."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        held: int = await conn.fetchval(
            """SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
               WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()"""
        )
    finally:
        await conn.close()
    return held


def _statement_errors(*processes: HubProcess) -> list[str]:
    """Log lines (JSON or a library's plain warning) naming a prepared-statement failure."""
    return [
        line[:300]
        for process in processes
        for line in process.log_file.read_text(encoding="utf-8").splitlines()
        if any(marker in line for marker in STATEMENT_ERRORS)
    ]


@pytest.mark.timeout(120)
async def test_the_hub_runs_behind_pgbouncer_in_transaction_mode(
    settings: Settings,
    services: Services,
    edge_node: EdgeNode,
    receivers: Receivers,
    bouncer: Bouncer,
    tmp_path: Path,
) -> None:
    await register(services, receivers, ("police-north",))
    run = _run_settings(settings, bouncer, tmp_path, cache=0)
    token = agency_token(Path(run.api_tokens_file), "police-north")
    api = HubProcess("api", run, tmp_path / "api.log").start()
    worker = HubProcess("worker", run, tmp_path / "worker.log").start()
    events = BATCHES * PER_BATCH
    try:
        await asyncio.to_thread(api.wait_ready)
        codes = await _post_batches(api, edge_node)
        assert codes == [200] * (BATCHES + 1)

        async def delivered() -> bool:
            return (await statuses(settings)).get("delivered", 0) == events

        await wait_until(delivered, within=60, what=f"{events} deliveries")
        assert await _feed_items(api, token) == events

        async def sealed() -> bool:
            entries, done, checkpoint = await _audit(settings)
            return entries >= BATCHES and done == entries == checkpoint

        await wait_until(sealed, within=30, what="every audit entry sealed under a checkpoint")
        clients, servers = bouncer.mine("CLIENTS"), bouncer.mine("SERVERS")
        stats = next(row for row in bouncer.show("STATS") if row["database"] == bouncer.database)
    finally:
        await asyncio.to_thread(api.stop)
        await asyncio.to_thread(worker.stop)

    print(  # noqa: T201 - the figures of docs/deploy.md
        f"behind PgBouncer: {len(clients)} client and {len(servers)} server connections, "
        f"{stats['total_xact_count']} transactions, {stats['total_query_count']} queries"
    )
    assert receivers.inbox.summary().unique == events
    assert await statuses(settings) == {"delivered": events}
    # PgBouncer pooled: every client connection of both processes shared two server ones.
    assert len(servers) <= SERVER_CONNECTIONS < len(clients), (servers, clients)
    assert int(stats["total_xact_count"]) > events, stats
    assert _statement_errors(api, worker) == []
    assert "ERROR" not in bouncer.log()
    # Nothing left a session-level advisory lock on a pooled server connection.
    assert await _advisory_locks(settings) == 0


@pytest.mark.timeout(60)
async def test_the_default_statement_cache_breaks_behind_pgbouncer(
    settings: Settings, edge_node: EdgeNode, bouncer: Bouncer, tmp_path: Path
) -> None:
    # Why HUB_DB_STATEMENT_CACHE_SIZE=0 exists (and proof the test above can fail): each
    # asyncpg connection names its statements __asyncpg_stmt_1__, _2_... so two clients
    # sharing a server connection collide ("already exists") and a client moved to another
    # server connection misses its own ("does not exist").
    run = _run_settings(settings, bouncer, tmp_path, cache=100)
    api = HubProcess("api", run, tmp_path / "api.log").start()
    worker = HubProcess("worker", run, tmp_path / "worker.log").start()
    ready: list[int] = []
    try:

        async def failing() -> bool:
            async with httpx.AsyncClient(base_url=api.url, timeout=5) as http:
                with contextlib.suppress(httpx.TransportError):
                    ready.append((await http.get("/readyz")).status_code)
            return bool(ready and _statement_errors(api, worker))

        await wait_until(failing, within=30, what="a prepared-statement error in the logs")
        # What a client sees meanwhile, for the record (it varies with the connection drawn).
        codes = await _post_batches(api, edge_node) if ready[-1] == 200 else []
    finally:
        await asyncio.to_thread(api.stop)
        await asyncio.to_thread(worker.stop)
    said = [f"hub {p.command}: {line}" for p in (api, worker) for line in _statement_errors(p)[:3]]
    # The figures of docs/deploy.md.
    print(f"statement cache 100: /readyz {ready[-1]}, ingest answers {codes}")  # noqa: T201
    print("\n".join(said))  # noqa: T201


@pytest.mark.timeout(60)
async def test_migrate_and_its_check_run_behind_pgbouncer(base_settings: Settings) -> None:
    # One-off connections (hub migrate, its --check, Piccolo's runner) prepare no named
    # statement whatever HUB_DB_STATEMENT_CACHE_SIZE says: the default (100) is left here.
    url = with_database(base_settings.database_url, f"hubtest_pgb_{uuid.uuid4().hex[:8]}")
    try:
        with running_bouncer(url, pool_size=SERVER_CONNECTIONS) as bouncer:
            env = {**os.environ, "HUB_DATABASE_URL": bouncer.url}
            runs = [_hub(env, "migrate"), _hub(env, "migrate", "--check")]
            served = int(bouncer.mine("STATS")[0]["total_xact_count"])
    finally:
        await drop_database(url)
    for done in runs:
        assert done.returncode == 0, done.stdout + done.stderr
    assert "migration(s) applied" in runs[0].stdout
    assert "0 pending migration(s)" in runs[1].stdout
    assert served > 0


def _hub(env: dict[str, str], *args: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(  # noqa: S603 - our own interpreter and CLI
        [sys.executable, "-m", "hub.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
