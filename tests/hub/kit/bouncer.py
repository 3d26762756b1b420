"""A private PgBouncer in transaction mode on a free loopback port, for tests: its config
and log in a temporary folder, its admin console read with psql (the console speaks only
the simple query protocol, which asyncpg does not offer for result rows)."""

import csv
import io
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support import free_port

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
PSQL = shutil.which("psql") or "/usr/bin/psql"


class Bouncer:
    """A running PgBouncer: the URL of the database through it and its admin console."""

    def __init__(self, *, port: int, database: str, log_file: Path) -> None:
        self.port = port
        self.url = f"postgresql://postgres@127.0.0.1:{port}/{database}"
        self.database = database
        self.log_file = log_file
        self._console = [PSQL, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "pgbouncer"]

    def show(self, what: str) -> list[dict[str, str]]:
        """`SHOW <what>` on the admin console (POOLS, STATS, CLIENTS, SERVERS), as rows."""
        done = subprocess.run(  # noqa: S603 - fixed arguments
            [*self._console, "--csv", "-c", f"SHOW {what}"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return list(csv.DictReader(io.StringIO(done.stdout)))

    def mine(self, what: str) -> list[dict[str, str]]:
        """`show(what)` limited to the rows of our database."""
        return [row for row in self.show(what) if row.get("database") == self.database]

    def log(self) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace")


def _version() -> tuple[int, ...]:
    said = subprocess.run(  # noqa: S603 - fixed arguments
        [PGBOUNCER, "--version"], capture_output=True, text=True, timeout=10, check=False
    ).stdout.split()
    # "PgBouncer 1.18.0" (more lines follow on newer versions)
    return tuple(int(p) for p in said[1].split(".")[:2]) if len(said) > 1 else (0, 0)


def _config(folder: Path, *, server: str, port: int, pool_size: int) -> Path:
    parts = urlsplit(server)
    (folder / "users.txt").write_text('"postgres" ""\n', encoding="utf-8")
    # 1.21+ keeps protocol-level prepared statements across server connections itself; we
    # leave it off so the hub's own setting (HUB_DB_STATEMENT_CACHE_SIZE=0) is what is tested.
    prepared = "max_prepared_statements = 0\n" if _version() >= (1, 21) else ""
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
admin_users = postgres
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 200
log_connections = 0
log_disconnections = 0
{prepared}""",
        encoding="utf-8",
    )
    return ini


@contextmanager
def running_bouncer(database_url: str, *, pool_size: int = 2) -> Iterator[Bouncer]:
    """PgBouncer (transaction mode, `pool_size` server connections) in front of the database
    of `database_url`; skips, saying why, when pgbouncer is missing or does not start."""
    if not Path(PGBOUNCER).exists():
        pytest.skip("pgbouncer is not installed (scripts/pgbouncer.sh installs it)")
    with tempfile.TemporaryDirectory(prefix="hub-pgbouncer-") as name:
        folder = Path(name)
        port = free_port()
        ini = _config(folder, server=database_url, port=port, pool_size=pool_size)
        # PgBouncer refuses to run as root: as root, it runs as the postgres user.
        user = ["-u", "postgres"] if os.geteuid() == 0 else []
        if user:
            shutil.chown(folder, "postgres")
        log_file = folder / "pgbouncer.log"
        with log_file.open("wb") as log:
            proc = subprocess.Popen(  # noqa: S603 - fixed arguments
                [PGBOUNCER, *user, str(ini)], stdout=log, stderr=log
            )
        try:
            database = urlsplit(database_url).path.lstrip("/")
            bouncer = Bouncer(port=port, database=database, log_file=log_file)
            _wait_listening(bouncer, proc)
            yield bouncer
        finally:
            proc.terminate()
            proc.wait(10)


def _wait_listening(bouncer: Bouncer, proc: "subprocess.Popen[bytes]") -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.skip(f"pgbouncer did not start: {bouncer.log()[-300:]}")
        try:
            bouncer.show("VERSION")
            return
        except subprocess.CalledProcessError:
            time.sleep(0.1)
    pytest.skip("pgbouncer did not answer within 10 s")
