"""The hub's pool behind a real PgBouncer in transaction mode: with the statement cache off
(HUB_DB_STATEMENT_CACHE_SIZE=0) a query works on whichever server connection PgBouncer hands
out; with asyncpg's default cache a statement prepared on one is missing on the next. Skips,
saying why, when pgbouncer is not installed (scripts/cluster.sh installs it) or cannot run."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from hub.kit.db import Database, PoolOptions

pytestmark = pytest.mark.db

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(folder: Path, *, server: str, port: int) -> Path:
    parts = urlsplit(server)
    (folder / "users.txt").write_text('"postgres" ""\n', encoding="utf-8")
    ini = folder / "pgbouncer.ini"
    ini.write_text(
        f"""[databases]
* = host={parts.hostname} port={parts.port or 5432}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "users.txt"}
pool_mode = transaction
default_pool_size = 2
max_client_conn = 50
""",
        encoding="utf-8",
    )
    return ini


@pytest.fixture
def bouncer(database_url: str) -> Iterator[str]:
    """A PgBouncer (transaction mode, two server connections) in front of the test database;
    the URL to reach the database through it."""
    if not Path(PGBOUNCER).exists():
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer)")
    with tempfile.TemporaryDirectory(prefix="hub-pgbouncer-") as name:
        folder = Path(name)
        port = _free_port()
        ini = _config(folder, server=database_url, port=port)
        # PgBouncer refuses to run as root: as root, it runs as the postgres user.
        user = ["-u", "postgres"] if os.geteuid() == 0 else []
        if user:
            shutil.chown(folder, "postgres")
        proc = subprocess.Popen(  # noqa: S603 - fixed arguments
            [PGBOUNCER, *user, str(ini)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            _wait_listening(port, proc)
            database = urlsplit(database_url).path.lstrip("/")
            yield f"postgresql://postgres@127.0.0.1:{port}/{database}"
        finally:
            proc.terminate()
            proc.wait(10)
            if proc.stderr is not None:
                proc.stderr.close()


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            said = proc.stderr.read().decode()[:300] if proc.stderr is not None else ""
            pytest.skip(f"pgbouncer did not start: {said}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.skip("pgbouncer did not listen within 10 s")


async def _query_across_server_connections(url: str, *, cache: int) -> None:
    """Client A runs a query (on server connection S1, the only one PgBouncer has used);
    client B then holds S1 in a transaction, so A's next run of the same query is given
    S2, where a statement A prepared by name on S1 does not exist."""
    options = PoolOptions(min_size=2, max_size=2, statement_cache_size=cache, connect_timeout=5)
    db = Database(url, options=options)
    await db.start()
    try:
        async with db.pool.acquire() as a, db.pool.acquire() as b:
            assert await a.fetchval("SELECT $1::int * 2", 1) == 2
            async with b.transaction():
                await b.fetchval("SELECT 1")
                assert await a.fetchval("SELECT $1::int * 2", 2) == 4
    finally:
        await db.stop()


async def test_statement_cache_off_works_behind_pgbouncer(bouncer: str) -> None:
    await _query_across_server_connections(bouncer, cache=0)


async def test_default_statement_cache_breaks_behind_pgbouncer(bouncer: str) -> None:
    # The reason for the setting (and proof the test above can fail).
    with pytest.raises(asyncpg.InvalidSQLStatementNameError):
        await _query_across_server_connections(bouncer, cache=100)
