"""Audit log: appends/s from concurrent writers, sealing rate, and `verify` of 1 M entries.

In a scratch database `hub_bench_<random>` (migrated with `hub migrate`, dropped afterwards):

1. appends: `--procs` processes x `--conns` connections each commit one-entry transactions
   for `--duration` seconds, each through the hub's own `append_entry`, while a sealer process
   runs the real `Sealer` every second (as the worker does). The same writers then run two
   references in the same table shape: a plain INSERT into a table with only a primary key,
   and the replaced design (an advisory lock held until commit, as `audit_append()` took).
   Printed: appends/s, CPU per append (writers, PostgreSQL, sealer), the sealer's rate and
   backlog at the end. With `--batch N` (N > 1) a further phase commits transactions of N
   entries each through `append_entries` (one INSERT), as callers that audit many things at
   once do; its rate counts entries.
2. verify: `--entries` (default 1 M) entries are COPYed in, sealed by the real sealer (its rate
   is printed) and checkpointed; then `verify_log` runs once on the intact log (seconds, CPU),
   and once after the newest entry was deleted (it must say so).

    .venv/bin/python bench/audit.py --duration 10 --entries 1000000
"""

import argparse
import asyncio
import json
import os
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import asyncpg
from ingest import CLK_TCK, Scratch, log

from hub.audit import (
    AppenderOptions,
    AuditAppender,
    AuditEntry,
    CheckpointSigner,
    Sealer,
    append_entries,
    append_entry,
    verify_log,
)
from hub.kit.db import Database
from hub.settings import load_settings

PLAIN_TABLE = """CREATE TABLE IF NOT EXISTS bench_plain (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at timestamptz NOT NULL,
    actor text NOT NULL, action text NOT NULL, target text NOT NULL, detail jsonb NOT NULL,
    decision_id text, trace_id text)"""
PLAIN_INSERT = """INSERT INTO bench_plain (at, actor, action, target, detail, decision_id,
    trace_id) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7)"""
LOCK_KEY = 7527030514016150633  # the key audit_append() used


@dataclass(frozen=True, slots=True)
class Phase:
    """One writer configuration."""

    kind: str  # "append" | "batch" | "plain" | "locked" | "appender"
    url: str
    conns: int
    duration: float
    start_at: float
    batch: int = 1
    callers: int = 64  # "appender": concurrent callers per process
    appender: AppenderOptions = field(default_factory=AppenderOptions)


def entry(n: int) -> AuditEntry:
    """A typical entry: an ingest batch's."""
    return AuditEntry(
        actor="node:3f6c1a2e-1b7d-4c55-9d1e-0a8b7c6d5e4f",
        action="ingest.batch",
        target=f"batch:{n}",
        detail={"accepted": 100, "dropped": 0, "quarantined": 0, "events": [str(n)]},
        decision_id="01JDEC0000000000000000000",
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
    )


async def _writer(conn: asyncpg.Connection, phase: Phase, deadline: float) -> int:
    """Commit one-entry transactions (`batch`-entry ones for "batch") until the deadline; how
    many entries."""
    n = 0
    while time.monotonic() < deadline:
        async with conn.transaction():
            if phase.kind == "batch":
                await append_entries(conn, [entry(n + i) for i in range(phase.batch)])
                n += phase.batch - 1
            elif phase.kind == "append":
                await append_entry(conn, entry(n))
            else:
                if phase.kind == "locked":
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
                e = entry(n)
                await conn.execute(
                    PLAIN_INSERT, datetime.now(UTC), e.actor, e.action, e.target,
                    json.dumps(e.detail), e.decision_id, e.trace_id,
                )  # fmt: skip
        n += 1
    return n


async def _caller(audit: AuditAppender, deadline: float) -> int:
    """Append one entry per call through the appender, each awaiting its commit; how many."""
    n = 0
    while time.monotonic() < deadline:
        await audit.append(entry(n))
        n += 1
    return n


async def _appender_writers(phase: Phase) -> tuple[int, float, int]:
    """`callers` tasks share one process appender on a pool of `flushes` connections, as an
    API process's feed pages do; (entries, CPU seconds of the pool's backends, INSERTs)."""
    size = phase.appender.flushes
    db = Database(phase.url, min_size=size, max_size=size)
    await db.start()
    audit = AuditAppender(db, options=phase.appender)
    try:
        held = [await db.pool.acquire() for _ in range(size)]
        pids = [await c.fetchval("SELECT pg_backend_pid()") for c in held]
        for conn in held:
            await db.pool.release(conn)
        await asyncio.sleep(max(0.0, phase.start_at - time.time()))
        before = backend_ticks(pids)
        deadline = time.monotonic() + phase.duration
        counts = await asyncio.gather(*(_caller(audit, deadline) for _ in range(phase.callers)))
        pg_seconds = (backend_ticks(pids) - before) / CLK_TCK
    finally:
        await audit.aclose()
        await db.stop()
    return sum(counts), pg_seconds, audit.inserts


async def _writers(phase: Phase) -> tuple[int, float]:
    """Run the connections' writers; (transactions, CPU seconds of their PostgreSQL backends)."""
    conns = [await asyncpg.connect(phase.url) for _ in range(phase.conns)]
    try:
        pids = [await c.fetchval("SELECT pg_backend_pid()") for c in conns]
        await asyncio.sleep(max(0.0, phase.start_at - time.time()))
        before = backend_ticks(pids)
        deadline = time.monotonic() + phase.duration
        counts = await asyncio.gather(*(_writer(c, phase, deadline) for c in conns))
        pg_seconds = (backend_ticks(pids) - before) / CLK_TCK
    finally:
        for conn in conns:
            await conn.close()
    return sum(counts), pg_seconds


def backend_ticks(pids: list[int]) -> int:
    """CPU ticks (user + system) the given PostgreSQL backends have used so far."""
    total = 0
    for pid in pids:
        raw = Path(f"/proc/{pid}/stat").read_text()
        fields = raw[raw.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total


def writer_process(phase: Phase) -> tuple[int, float, float, int]:
    """One writer process: (entries, its CPU seconds, its backends' CPU seconds, statements
    that committed them)."""
    if time.time() > phase.start_at - 0.5:
        raise RuntimeError("a writer process started too late: raise --warmup")
    cpu = _cpu()
    if phase.kind == "appender":
        done, pg_seconds, inserts = asyncio.run(_appender_writers(phase))
    else:
        done, pg_seconds = asyncio.run(_writers(phase))
        inserts = done // phase.batch if phase.kind == "batch" else done
    return done, _cpu() - cpu, pg_seconds, inserts


async def _seal_loop(
    url: str, secrets_dir: str, start_at: float, seconds: float
) -> dict[str, float]:
    db = Database(url, min_size=1, max_size=1)
    await db.start()
    sealer = Sealer(db, signer=CheckpointSigner.from_dir(secrets_dir), checkpoint_seconds=60)
    pid = await db.pool.fetchval("SELECT pg_backend_pid()")
    await asyncio.sleep(max(0.0, start_at - time.time()))
    cpu, ticks = _cpu(), backend_ticks([pid])
    sealed, busiest, end = 0, 0.0, time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            started = time.monotonic()
            sealed += (await sealer.run()).sealed
            busiest = max(busiest, time.monotonic() - started)
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
        pg_seconds = (backend_ticks([pid]) - ticks) / CLK_TCK
        backlog = await db.pool.fetchval("SELECT count(*) FROM audit_log WHERE leaf_index IS NULL")
    finally:
        await db.stop()
    return {
        "sealed": sealed,
        "longest_run_s": round(busiest, 3),
        "backlog_at_end": int(backlog),
        "cpu_s": _cpu() - cpu,
        "postgres_cpu_s": pg_seconds,
    }


def sealer_process(phase: Phase, secrets_dir: str, seconds: float) -> dict[str, float]:
    """The sealer, once a second for `seconds` from the phase's start, as the worker runs it."""
    return asyncio.run(_seal_loop(phase.url, secrets_dir, phase.start_at, seconds))


def run_phase(args: argparse.Namespace, scratch: Scratch, kind: str) -> dict[str, Any]:
    """Run the writers of one kind (and, for appends, the sealer beside them)."""
    start_at = time.time() + args.warmup  # spawned processes import the hub first
    phase = Phase(
        kind,
        scratch.database_url,
        args.conns,
        args.duration,
        start_at,
        args.batch,
        callers=args.callers,
        appender=AppenderOptions(
            batch=args.appender_batch,
            linger_seconds=args.linger_ms / 1000,
            flushes=args.flushes,
            queue=max(10_000, args.callers * 2),
        ),
    )
    context = get_context("spawn")
    with ProcessPoolExecutor(args.procs + 1, mp_context=context) as pool:
        sealing = (
            pool.submit(sealer_process, phase, str(scratch.folder), args.duration + 3)
            if kind in ("append", "batch", "appender")
            else None
        )
        futures = [pool.submit(writer_process, phase) for _ in range(args.procs)]
        results = [f.result() for f in futures]
        sealer = sealing.result() if sealing is not None else None
    done = sum(r[0] for r in results)
    rate = done / args.duration
    report: dict[str, Any] = {
        "kind": kind,
        "per_second": round(rate),
        "writers": args.procs * (args.callers if kind == "appender" else args.conns),
        "entries_per_transaction": round(done / max(1, sum(r[3] for r in results)), 1),
        "cpu_ms_per_op": {
            "writers": round(sum(r[1] for r in results) / done * 1000, 3),
            "postgres": round(sum(r[2] for r in results) / done * 1000, 3),
        },
    }
    if sealer is not None:
        report["sealer"] = {
            **sealer,
            "per_second": round(sealer["sealed"] / (args.duration + 3)),
            "cpu_ms_per_entry": {
                "sealer": round(sealer["cpu_s"] / max(1, sealer["sealed"]) * 1000, 3),
                "postgres": round(sealer["postgres_cpu_s"] / max(1, sealer["sealed"]) * 1000, 3),
            },
        }
    log(f"{kind}: {report}")
    return report


async def seed(url: str, count: int) -> float:
    """COPY `count` entries (unsealed) into audit_log; seconds."""
    started = time.monotonic()
    now = datetime.now(UTC) - timedelta(days=1)
    conn = await asyncpg.connect(url)
    try:
        for first in range(0, count, 100_000):
            rows = []
            for n in range(first, min(count, first + 100_000)):
                e = entry(n)
                rows.append(
                    (now + timedelta(microseconds=n), e.actor, e.action, e.target,
                     json.dumps(e.detail), e.decision_id, e.trace_id)
                )  # fmt: skip
            await conn.copy_records_to_table(
                "audit_log",
                records=rows,
                columns=["at", "actor", "action", "target", "detail", "decision_id", "trace_id"],
            )
    finally:
        await conn.close()
    return time.monotonic() - started


async def verify_phase(args: argparse.Namespace, scratch: Scratch) -> dict[str, Any]:
    """Seed, seal and checkpoint `--entries`, then time verify on it, intact and tail-cut."""
    # One connection, so its backend's CPU is PostgreSQL's share (other engineers' databases
    # run on the same server).
    db = Database(scratch.database_url, min_size=1, max_size=1)
    await db.start()
    try:
        await db.pool.execute("TRUNCATE audit_log, audit_tree, audit_node, audit_checkpoint")
        seeded = await seed(scratch.database_url, args.entries)
        log(f"seeded {args.entries} entries in {seeded:.1f} s")
        signer = CheckpointSigner.from_dir(str(scratch.folder))
        sealer = Sealer(db, signer=signer, checkpoint_seconds=60)
        backend = [await db.pool.fetchval("SELECT pg_backend_pid()")]
        started, cpu0, pg0 = time.monotonic(), _cpu(), backend_ticks(backend)
        sealed = await sealer.run(force_checkpoint=True)
        seal_s, seal_cpu = time.monotonic() - started, _cpu() - cpu0
        seal_pg = (backend_ticks(backend) - pg0) / CLK_TCK
        log(f"sealed {sealed.sealed} in {seal_s:.1f} s")
        intact = await _timed_verify(db, signer, backend)
        last = await db.pool.fetchval("SELECT seq FROM audit_log ORDER BY leaf_index DESC LIMIT 1")
        await db.pool.execute("DELETE FROM audit_log WHERE seq = $1", last)
        cut = await _timed_verify(db, signer, backend)
    finally:
        await db.stop()
    return {
        "entries": args.entries,
        "seal": {
            "seconds": round(seal_s, 1),
            "per_second": round(sealed.sealed / seal_s),
            "cpu_us_per_entry": {
                "sealer": round(seal_cpu / sealed.sealed * 1e6, 1),
                "postgres": round(seal_pg / sealed.sealed * 1e6, 1),
            },
        },
        "verify_intact": intact,
        "verify_after_deleting_the_newest_entry": cut,
    }


async def _timed_verify(
    db: Database, signer: CheckpointSigner, backend: list[int]
) -> dict[str, Any]:
    """One verification as `hub audit verify` runs it: seconds and CPU."""
    started, cpu0, pg0 = time.monotonic(), _cpu(), backend_ticks(backend)
    report = await verify_log(db.pool, key=signer.public)
    seconds = time.monotonic() - started
    figures = {
        "seconds": round(seconds, 2),
        "cpu_s": {
            "verifier": round(_cpu() - cpu0, 2),
            "postgres": round((backend_ticks(backend) - pg0) / CLK_TCK, 2),
        },
        "ok": report.ok,
        "entries": report.entries,
        "problem": report.problem,
    }
    log(f"verify: {figures}")
    return figures


def _cpu() -> float:
    """CPU seconds this process has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    """Parse arguments, run both phases in a scratch database, print one JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per writer phase")
    parser.add_argument("--procs", type=int, default=2, help="writer processes")
    parser.add_argument("--conns", type=int, default=8, help="connections per writer process")
    parser.add_argument("--batch", type=int, default=1, help="entries per batched transaction")
    parser.add_argument(
        "--appender", action="store_true", help="add the group-commit appender phase (ADR 0025)"
    )
    parser.add_argument("--callers", type=int, default=64, help="appender callers per process")
    parser.add_argument("--flushes", type=int, default=2, help="appender INSERTs in flight")
    parser.add_argument("--appender-batch", type=int, default=256, help="appender batch cap")
    parser.add_argument("--linger-ms", type=float, default=1.0, help="appender linger")
    parser.add_argument(
        "--only", default="", help="comma-separated phases to run (append,plain,locked,...)"
    )
    parser.add_argument("--entries", type=int, default=1_000_000, help="entries to verify")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds to start writers")
    parser.add_argument("--skip-appends", action="store_true")
    parser.add_argument("--skip-verify", action="store_true")
    args = parser.parse_args()
    scratch = Scratch(load_settings())
    try:
        scratch.hub("migrate")
        asyncio.run(_plain_table(scratch.database_url))
        report: dict[str, Any] = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds")}
        report["load_before"] = _loadavg()
        if not args.skip_appends:
            kinds = ["append", "plain", "locked"] + (["batch"] if args.batch > 1 else [])
            kinds += ["appender"] if args.appender else []
            if args.only:
                kinds = [k for k in kinds if k in args.only.split(",")]
            report["appends"] = [run_phase(args, scratch, k) for k in kinds]
        if not args.skip_verify:
            report["verify"] = asyncio.run(verify_phase(args, scratch))
        report["load_after"] = _loadavg()
    finally:
        scratch.close()
    print(json.dumps(report, indent=2))


async def _plain_table(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(PLAIN_TABLE)
    finally:
        await conn.close()


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


if __name__ == "__main__":
    main()
