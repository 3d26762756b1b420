"""Helpers of the cluster fault tests: run the edge load in its namespace, inject a fault
through scripts/cluster.sh, and check the end state: every accepted event stored once and
delivered once at the idempotent receiver."""

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".hub" / "cluster"
API = "http://10.231.0.30:8000"
INBOX = "http://10.231.0.60:8101/_inbox"
DATABASE = (
    "postgresql://postgres@10.231.0.11:5432,10.231.0.12:5432/hub_cluster"
    "?target_session_attrs=read-write"
)


def cluster(*args: str, timeout: float = 60) -> str:
    """Run scripts/cluster.sh with `args`; its stdout."""
    done = subprocess.run(  # noqa: S603 - our own script, fixed arguments
        [str(ROOT / "scripts" / "cluster.sh"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"cluster.sh {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


@dataclass(frozen=True)
class Outcome:
    """What the edge saw and what the hub stored and delivered."""

    accepted: int
    stored: int
    delivered: int
    received_unique: int
    received_duplicates: int
    resent_batches: int
    failed_attempts: Counter[str]
    unavailable_seconds: float
    drained_after_seconds: float

    def summary(self) -> str:
        """One line for the test log and docs/cluster.md."""
        return (
            f"accepted {self.accepted}, stored {self.stored}, delivered {self.delivered}, "
            f"received {self.received_unique} (+{self.received_duplicates} re-sent), "
            f"batches re-sent by the edge {self.resent_batches}, failed attempts "
            f"{dict(self.failed_attempts)}, ingest unavailable {self.unavailable_seconds:.1f} s, "
            f"drained {self.drained_after_seconds:.1f} s after the load"
        )


async def clear_inbox() -> None:
    """Forget what the demo agency received so far."""
    async with httpx.AsyncClient(timeout=5) as http:
        (await http.post(f"{INBOX}/clear")).raise_for_status()


async def start_load(out: Path, *, rate: float, duration: float) -> asyncio.subprocess.Process:
    """The edge's load, running in its own namespace until `duration` is over."""
    return await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", "hubc-edge", sys.executable,
        str(ROOT / "scripts" / "cluster" / "load.py"),
        "--base", API, "--node", str(STATE / "edge"), "--rate", str(rate),
        "--duration", str(duration), "--out", str(out),
        cwd=ROOT,
    )  # fmt: skip


def unavailable_seconds(attempts: list[tuple[float, str]]) -> float:
    """Longest stretch from a failed attempt to the next success (the edge's outage); one
    that never ended counts up to the last attempt."""
    longest, since, last = 0.0, None, 0.0
    for at, outcome in sorted(attempts):
        last = at
        if outcome != "200" and since is None:
            since = at
        elif outcome == "200" and since is not None:
            longest, since = max(longest, at - since), None
    return longest if since is None else max(longest, last - since)


async def settle(report_file: Path, *, within: float = 150) -> Outcome:
    """Wait until every delivery of the accepted events is delivered; then count."""
    report = json.loads(report_file.read_text(encoding="utf-8"))
    ids = list(set(report["accepted"]))
    started = time.monotonic()
    conn = await _connect(within)
    try:
        while True:
            stored, deliveries, done = await _ledger(conn, ids)
            if done == deliveries or time.monotonic() - started > within:
                break
            await asyncio.sleep(1)
    finally:
        await conn.close()
    async with httpx.AsyncClient(timeout=5) as http:
        inbox = (await http.get(f"{INBOX}/")).json()
    return Outcome(
        accepted=len(report["accepted"]),
        stored=stored,
        delivered=done,
        received_unique=inbox["unique"],
        received_duplicates=inbox["duplicates"],
        resent_batches=report["resent"],
        failed_attempts=Counter(o for _, o in report["attempts"] if o != "200"),
        unavailable_seconds=unavailable_seconds(report["attempts"]),
        drained_after_seconds=time.monotonic() - started,
    )


async def _connect(within: float) -> asyncpg.Connection:
    deadline = time.monotonic() + within
    while True:
        try:
            return await asyncpg.connect(DATABASE, timeout=5)
        except (OSError, asyncpg.PostgresError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1)


async def _ledger(conn: asyncpg.Connection, ids: list[str]) -> tuple[int, int, int]:
    row = await conn.fetchrow(
        """
        SELECT (SELECT count(*) FROM detection_event
                 WHERE event_id = ANY ($1::uuid[]) AND disposition = 'accepted') AS stored,
               count(d.id) AS deliveries,
               count(d.id) FILTER (WHERE d.status = 'delivered') AS delivered
          FROM detection_event e JOIN delivery d
            ON d.event_pk = e.id AND d.event_captured_at = e.captured_at
         WHERE e.event_id = ANY ($1::uuid[])
        """,
        ids,
    )
    assert row is not None
    return int(row["stored"]), int(row["deliveries"]), int(row["delivered"])


async def execute(sql: str) -> None:
    """Run one statement on the primary (a migration step of the rolling upgrade)."""
    conn = await asyncpg.connect(DATABASE, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def db_now() -> datetime:
    """The database's clock (leases are stamped with it)."""
    conn = await asyncpg.connect(DATABASE, timeout=5)
    try:
        now: datetime = await conn.fetchval("SELECT now()")
        return now
    finally:
        await conn.close()


async def leases_held(*, claimed_after: datetime) -> int:
    """Delivery rows claimed after `claimed_after` and leased right now."""
    conn = await asyncpg.connect(DATABASE, timeout=5)
    try:
        sql = (
            "SELECT count(*) FROM delivery WHERE status = 'in_flight'"
            " AND next_attempt_at > now() AND updated_at > $1"
        )
        return int(await conn.fetchval(sql, claimed_after))
    finally:
        await conn.close()


def hub_running(host: str) -> bool:
    """True when a `hub` process lives in the host's namespace (its supervisor restarts one
    that exited)."""
    pids = cluster_pids(host)
    return any(b"hub.cli.main" in _cmdline(pid) for pid in pids)


def cluster_pids(host: str) -> list[int]:
    """Every process in the host's namespace."""
    done = subprocess.run(  # noqa: S603 - fixed arguments
        ["/usr/sbin/ip", "netns", "pids", f"hubc-{host}"], capture_output=True, check=False
    )
    return [int(p) for p in done.stdout.split()]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


async def wait_for_leases(*, claimed_after: datetime, within: float = 15) -> int:
    """Wait until rows claimed after `claimed_after` are leased; how many (0: none came)."""
    deadline = time.monotonic() + within
    while True:
        held = await leases_held(claimed_after=claimed_after)
        if held or time.monotonic() > deadline:
            return held
        await asyncio.sleep(0.05)
