"""A private PostgreSQL primary with a streaming replica, for `bench/ingest.py --replica`.

Not a benchmark of its own (the leading underscore keeps `make bench` from running it). The
machine's shared server cannot be replicated without changing its pg_hba.conf, which a
benchmark must not do, so a run that wants feed pages read from a replica (ADR 0016, "Feed
pages on a replica") gets a pair of its own: both servers from this machine's PostgreSQL
binaries, in a temporary folder, on free loopback ports, removed afterwards. The replica's
server may run at a lower CPU priority (`lower_priority`): every backend it forks inherits
it, which is how a replica on the same host keeps its reads behind the primary's writes.
"""

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_SECONDS = 60
# Small and fixed, like the machine's own server (128 MB), so a run measures the hub, not
# a bigger buffer pool.
PRIMARY_CONF = """
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
shared_buffers = 128MB
wal_level = replica
max_wal_senders = 4
wal_keep_size = 256MB
hot_standby = on
"""
HBA = "host all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n"


def pg_bin() -> Path:
    """The folder of the newest PostgreSQL server binaries on this machine."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=_version)
    if not found:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")
    return found[-1].parent


def _version(path: Path) -> tuple[int, ...]:
    name = path.parent.parent.name
    return tuple(int(p) for p in name.split(".") if p.isdigit())


@dataclass(slots=True)
class PrivatePair:
    """A primary and its streaming replica on the given free loopback ports; `start()` makes
    both, `stop()` removes both."""

    primary_port: int
    replica_port: int
    replica_nice: int = 10
    # CPUs each server runs on (None: any), for emulating two hosts on one machine.
    primary_cpus: set[int] | None = None
    replica_cpus: set[int] | None = None
    folder: Path | None = None

    def url(self, database: str, *, replica: bool = False) -> str:
        """A URL of `database` on the primary (or the replica)."""
        port = self.replica_port if replica else self.primary_port
        return f"postgresql://postgres@127.0.0.1:{port}/{database}"

    def start(self) -> None:
        """initdb the primary, start it, clone it with pg_basebackup and start the replica
        (at `replica_nice`, see `lower_priority`); return once the replica streams."""
        self.folder = Path(tempfile.mkdtemp(prefix="hub-bench-pg-"))
        _own(self.folder)  # the server user writes its logs beside its data folders
        primary, replica = self.folder / "primary", self.folder / "replica"
        for data in (primary, replica):
            data.mkdir(mode=0o700)
            _own(data)
        _as_server_user([str(pg_bin() / "initdb"), "-D", str(primary), "-U", "postgres",
                         "-A", "trust", "-E", "UTF8", "--no-locale"])  # fmt: skip
        _append(primary / "postgresql.conf", f"{PRIMARY_CONF}port = {self.primary_port}\n")
        _append(primary / "pg_hba.conf", HBA)
        self._pg_ctl(primary, "primary", self.primary_cpus)
        _as_server_user([str(pg_bin() / "pg_basebackup"), "-h", "127.0.0.1",
                         "-p", str(self.primary_port), "-U", "postgres", "-D", str(replica),
                         "-R", "-X", "stream", "-c", "fast"])  # fmt: skip
        _append(replica / "postgresql.auto.conf", f"port = {self.replica_port}\n")
        self._pg_ctl(replica, "replica", self.replica_cpus)
        pid = self.postmaster_pid("replica")
        if pid is not None and self.replica_nice:
            lower_priority(pid, self.replica_nice)
        self._wait_streaming()

    def _pg_ctl(self, data: Path, name: str, cpus: set[int] | None) -> None:
        """Start a server; with `cpus`, under taskset, so the postmaster and every process it
        forks stay on them."""
        assert self.folder is not None
        log = self.folder / f"{name}.log"
        start = [str(pg_bin() / "pg_ctl"), "start", "-D", str(data), "-l", str(log), "-w",
                 "-t", str(START_TIMEOUT_SECONDS)]  # fmt: skip
        pinned = ["taskset", "-c", ",".join(map(str, sorted(cpus)))] if cpus else []
        _as_server_user([*pinned, *start])

    def _wait_streaming(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        query = "select count(*) from pg_stat_replication where state = 'streaming'"
        while time.monotonic() < deadline:
            out = _psql(self.primary_port, query)
            if out.strip() == "1":
                return
            time.sleep(0.2)
        raise RuntimeError("the private replica did not start streaming")

    def postmaster_pid(self, name: str) -> int | None:
        """The postmaster pid of "primary" or "replica" (its children are the server's)."""
        assert self.folder is not None
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.folder / name / "postmaster.pid").read_text().split()[0])
        return None

    def stop(self) -> None:
        """Stop both servers (fast shutdown) and remove their folder."""
        if self.folder is None:
            return
        for data in ("replica", "primary"):
            if (self.folder / data / "postmaster.pid").exists():
                _as_server_user(
                    [str(pg_bin() / "pg_ctl"), "stop", "-D", str(self.folder / data),
                     "-m", "fast", "-w"],
                    check=False,
                )  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None


def lower_priority(pid: int, nice: int) -> None:
    """Run `pid`, and everything it starts from now on, at `nice`.

    With autogroup scheduling (/proc/sys/kernel/sched_autogroup_enabled, on here), the
    scheduler first shares the cores between sessions, each with the weight of its
    autogroup's nice, and only then between a session's processes by their own nice: a
    `nice -n 10` server in a session of its own still gets as much as any other session. So
    a process that leads its own session gets its autogroup's nice set (sched(7), "The
    autogroup feature"); one that does not only its own nice (both for a plain kernel)."""
    os.setpriority(os.PRIO_PROCESS, pid, nice)
    group = Path(f"/proc/{pid}/autogroup")
    if os.getsid(pid) == pid and group.exists():
        group.write_text(f"{nice}\n")


def _own(path: Path) -> None:
    if os.geteuid() == 0:  # initdb refuses root: the servers run as `postgres`
        shutil.chown(path, user="postgres", group="postgres")


def _as_server_user(command: list[str], *, check: bool = True) -> None:
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    done = subprocess.run(  # noqa: S603 - this machine's PostgreSQL binaries, fixed arguments
        command, cwd="/", capture_output=True, text=True, timeout=120, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"{Path(command[-1]).name}: {' '.join(command)} failed:\n{done.stderr}")


def _append(path: Path, text: str) -> None:
    with path.open("a") as file:
        file.write(text)


def _psql(port: int, query: str) -> str:
    done = subprocess.run(  # noqa: S603 - psql with fixed arguments
        [str(pg_bin() / "psql"), "-X", "-At", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
         "-d", "postgres", "-c", query],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    return done.stdout
