"""The rig's API hosts reach the primary only through the PgBouncer (transaction mode) beside
it: under the edge's load every event is stored and delivered once, PostgreSQL sees no
connection from an API host, and PgBouncer's admin console shows both hosts' clients sharing
at most its four server connections."""

import asyncio
import csv
import io
import subprocess
from pathlib import Path

import asyncpg
import pytest

from tests.cluster.kit import clear_inbox, settle, start_load

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(300)]

PG1 = "10.231.0.11"
API_HOSTS = {"10.231.0.31", "10.231.0.32"}
SERVER_CONNECTIONS = 4  # default_pool_size in scripts/cluster.sh
CONSOLE = ["/usr/bin/psql", "-X", "-h", PG1, "-p", "6432", "-U", "postgres", "pgbouncer"]


def show(what: str) -> list[dict[str, str]]:
    """`SHOW <what>` on pg1's PgBouncer console, rows of the hub's database only."""
    done = subprocess.run(  # noqa: S603 - fixed arguments
        [*CONSOLE, "--csv", "-c", f"SHOW {what}"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    rows = csv.DictReader(io.StringIO(done.stdout))
    return [row for row in rows if row.get("database") == "hub_cluster"]


async def backends_by_address() -> dict[str, int]:
    """pg1's client backends of the hub's database, counted by the address they came from."""
    conn = await asyncpg.connect(f"postgresql://postgres@{PG1}:5432/hub_cluster", timeout=5)
    try:
        rows = await conn.fetch(
            """SELECT host(client_addr) AS addr, count(*) AS n FROM pg_stat_activity
               WHERE datname = 'hub_cluster' AND backend_type = 'client backend'
                 AND pid <> pg_backend_pid() GROUP BY 1"""
        )
    finally:
        await conn.close()
    return {str(r["addr"]): int(r["n"]) for r in rows}


async def test_api_hosts_write_through_pgbouncer(rig: None, tmp_path: Path) -> None:
    before = int(show("STATS")[0]["total_xact_count"])
    await clear_inbox()
    out = tmp_path / "load.json"
    load = await start_load(out, rate=40.0, duration=10.0)
    await asyncio.sleep(5)
    clients, servers = show("CLIENTS"), show("SERVERS")
    backends = await backends_by_address()
    assert await load.wait() == 0, "the edge load failed"
    outcome = await settle(out)
    served = int(show("STATS")[0]["total_xact_count"]) - before
    print(  # noqa: T201 - the figures of docs/cluster.md
        f"\n{outcome.summary()}\nthrough pg1's PgBouncer: {served} transactions, "
        f"{len(clients)} client and {len(servers)} server connections; pg1 backends {backends}"
    )
    assert outcome.accepted > 0
    assert outcome.stored == outcome.delivered == outcome.accepted
    assert {c["addr"] for c in clients} == API_HOSTS  # both API hosts, through PgBouncer
    assert 0 < len(servers) <= SERVER_CONNECTIONS
    assert not API_HOSTS & backends.keys(), backends  # no API host reached PostgreSQL itself
    assert served > outcome.accepted // 10  # at least one transaction per batch of ten
