"""Retention sweep: partition drops against batched row deletes, and ingest p99 while it runs.

Seeds `--rows` events (default 10 M) spread evenly over the last 12 months with COPY into a
scratch database `hub_bench_<random>`, with a scratch copy of the default policy bundle whose
detection-event retention is `--keep-days` (default 182: about six months expire). Then:

1. ingest p99 with no sweep (signed batches through a `hub api` subprocess, as bench/ingest.py);
2. the same load while a sweep runs in this process (drops of whole expired months, then
   batched deletes of the month the cutoff falls in);
3. the figures: rows/s of each phase and ingest p99 idle vs during the sweep (goal: within
   20 %). Everything made for the run is removed afterwards, even on failure.

    .venv/bin/python bench/retention.py --rows 2000000 --duration 20
"""

import argparse
import asyncio
import json
import shutil
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
from ingest import Scratch, free_port, log, percentile, plan_load, run_load

from hub.ingest.partitions import ensure_partitions, month_start
from hub.policy.bundle import load_bundle_dir
from hub.policy.engines import load_engine
from hub.retention.sweep import SweepDeps, run_sweep
from hub.runtime import build_services, start_services, stop_services
from hub.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 100_000


@dataclass
class RetentionScratch(Scratch):
    """Scratch resources plus a policy folder of our own (shorter event retention)."""

    policy_dir: Path | None = None

    def env(self, **extra: str) -> dict[str, str]:
        """Hub subprocesses read our policy copy."""
        if self.policy_dir is not None:
            extra = {"HUB_POLICY_DIR": str(self.policy_dir), **extra}
        return super().env(**extra)


def write_policy(folder: Path, *, keep_days: int) -> Path:
    """A copy of the default bundle: events kept `keep_days`, snapshots and PII longer (the
    benchmark measures event deletion; PII scrubbing is a separate pass)."""
    target = folder / "policies"
    shutil.copytree(ROOT / "policies", target)
    data_file = target / "data.json"
    data = json.loads(data_file.read_text())
    classes = data["hub"]["config"]["retention"]["classes"]
    classes["detection_event"] = {"keep_days": keep_days, "jurisdictions": {}}
    for name in ("snapshot", "pii_attribute"):
        classes[name] = {"keep_days": 400, "jurisdictions": {}}
    data_file.write_text(json.dumps(data))
    return target


async def seed(database_url: str, *, rows: int, cameras: int) -> float:
    """Create 13 monthly partitions and COPY `rows` events spread over 365 days; seconds."""
    now = datetime.now(UTC)
    conn = await asyncpg.connect(database_url)
    try:
        node = uuid.uuid4()
        first = month_start(now.date(), -12)
        for k in range(13):  # one marker row per month, moved into its own partition
            month = month_start(first, k)
            await conn.execute(
                """INSERT INTO detection_event (node_id, event_id, captured_at, camera_id,
                       classes, max_confidence, content_sha256, payload)
                   VALUES ($1, $2, $3, 'marker', '{x}', 1, '\\x00', '{}')""",
                node,
                uuid.uuid4(),
                datetime(month.year, month.month, 15, tzinfo=UTC),
            )
        await ensure_partitions(conn, now=now, ahead=1)
        await conn.execute("DELETE FROM detection_event WHERE camera_id = 'marker'")
        started = time.perf_counter()
        step = timedelta(days=365) / rows
        oldest = now - timedelta(days=365)
        for start in range(0, rows, CHUNK):
            records = [
                _record(node, oldest + step * i, f"bench-cam-{i % cameras:02d}")
                for i in range(start, min(rows, start + CHUNK))
            ]
            await conn.copy_records_to_table(
                "detection_event",
                records=records,
                columns=["node_id", "event_id", "captured_at", "camera_id", "classes",
                         "max_confidence", "content_sha256", "payload", "disposition"],
            )  # fmt: skip
            if start // CHUNK % 10 == 0:
                log(f"seeded {start + len(records):,} rows")
        # Seeded rows are history, not news: keep them out of the feed sequencer's queue
        # (a scratch table of our own), so the idle figure is not a back-fill.
        await conn.execute("TRUNCATE feed_pending")
        await conn.execute("ANALYZE detection_event")
        return time.perf_counter() - started
    finally:
        await conn.close()


def _record(node: uuid.UUID, at: datetime, camera: str) -> tuple[Any, ...]:
    event_id = uuid.uuid4()
    payload = (
        f'{{"event_id":"{event_id}","camera_id":"{camera}","captured_at":"{at.isoformat()}",'
        '"model_name":"bench","model_version":"1","detections":[{"label":"vehicle",'
        '"confidence":0.9,"box":{"x":0.1,"y":0.1,"width":0.2,"height":0.2}}]}'
    )
    return (node, event_id, at, camera, ["vehicle"], 0.9, event_id.bytes * 2, payload, "accepted")


@dataclass
class SweepTimes:
    """When the sweep's phases ended, from its progress callbacks."""

    started: float = 0.0
    drops_done: float = 0.0
    deletes_done: float = 0.0
    finished: float = 0.0
    dropped_rows: int = 0
    deleted_rows: int = 0
    partitions: int = 0


def sweep_in_thread(args: argparse.Namespace, scratch: RetentionScratch) -> tuple[
    threading.Thread, SweepTimes, dict[str, Any]
]:  # fmt: skip
    """Start the sweep in a thread of its own (its own event loop); returns at once."""
    times, result = SweepTimes(), {}

    def progress(what: str, n: int) -> None:
        now = time.perf_counter()
        if what.startswith("dropped "):
            times.drops_done, times.dropped_rows = now, times.dropped_rows + n
            times.partitions += 1
        elif what == "detection_event":
            times.deletes_done, times.deleted_rows = now, times.deleted_rows + n

    async def sweep() -> None:
        settings = msgspec.structs.replace(
            load_settings(), database_url=scratch.database_url, redis_prefix=scratch.redis_prefix
        )
        services = build_services(settings)
        await start_services(services)
        assert scratch.policy_dir is not None
        services.policy.activate(load_engine(load_bundle_dir(scratch.policy_dir)))
        deps = SweepDeps(
            db=services.db, policy=services.policy, media_root=scratch.folder / "media",
            batch_size=args.batch_size, batch_pause_ms=args.pause_ms, progress=progress,
            actor="bench",
        )  # fmt: skip
        try:
            times.started = time.perf_counter()
            report = await run_sweep(deps, dry_run=False)
            times.finished = time.perf_counter()
            result["report"] = msgspec.to_builtins(report)
        finally:
            await stop_services(services)

    thread = threading.Thread(target=lambda: asyncio.run(sweep()), daemon=True)
    thread.start()
    return thread, times, result


def p99(load: Any) -> float:
    """p99 of the timed requests, ms."""
    return percentile(sorted(load.tally.latencies_ms), 0.99)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Seed, load idle, load while sweeping; always clean up."""
    scratch = RetentionScratch(settings=load_settings())
    try:
        scratch.policy_dir = write_policy(scratch.folder, keep_days=args.keep_days)
        log(f"scratch database hub_bench_{scratch.tag}; seeding {args.rows:,} rows")
        scratch.hub("migrate")
        seed_s = asyncio.run(seed(scratch.database_url, rows=args.rows, cameras=args.cameras))
        key_id, key_pem = scratch.add_node(cameras=args.cameras)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        scratch.start_api(port=port, workers=args.workers)
        scratch.wait_ready(base_url, workers=args.workers)
        assert scratch.api is not None
        idle = run_load(plan_load(args, base_url=base_url, key_id=key_id, key_pem=key_pem),
                        api_pid=scratch.api.pid)  # fmt: skip
        thread, times, result = sweep_in_thread(args, scratch)
        busy = run_load(plan_load(args, base_url=base_url, key_id=key_id, key_pem=key_pem),
                        api_pid=scratch.api.pid)  # fmt: skip
        load_ended = time.perf_counter()
        thread.join()
        return report(args, seed_s, idle, busy, times, result, load_ended)
    finally:
        scratch.close()


def report(
    args: argparse.Namespace,
    seed_s: float,
    idle: Any,
    busy: Any,
    times: SweepTimes,
    result: dict[str, Any],
    load_ended: float,
) -> dict[str, Any]:
    """The figures as one dict."""
    drop_s = max(0.0, times.drops_done - times.started) if times.partitions else 0.0
    delete_s = max(0.0, times.deletes_done - (times.drops_done or times.started))
    idle_p99, busy_p99 = p99(idle), p99(busy)
    return {
        "rows_seeded": args.rows,
        "seed_rows_per_s": round(args.rows / seed_s),
        "keep_days": args.keep_days,
        "partitions_dropped": times.partitions,
        "rows_dropped": times.dropped_rows,
        "drop_seconds": round(drop_s, 3),
        "drop_rows_per_s": round(times.dropped_rows / drop_s) if drop_s else None,
        "rows_batch_deleted": times.deleted_rows,
        "delete_seconds": round(delete_s, 3),
        "delete_rows_per_s": round(times.deleted_rows / delete_s) if delete_s else None,
        "sweep_seconds": round(times.finished - times.started, 3),
        "sweep_overlapped_load": times.finished <= load_ended or times.started <= load_ended,
        "batch_size": args.batch_size,
        "pause_ms": args.pause_ms,
        "ingest_p99_idle_ms": round(idle_p99, 1),
        "ingest_p99_sweeping_ms": round(busy_p99, 1),
        "p99_change_pct": round(100 * (busy_p99 - idle_p99) / idle_p99, 1),
        "goal_met": busy_p99 <= idle_p99 * 1.2,
        "requests_idle": idle.tally.requests_ok,
        "requests_sweeping": busy.tally.requests_ok,
        "errors": {**idle.tally.errors, **busy.tally.errors},
        "sweep_report": result.get("report"),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (load options as in bench/ingest.py)."""
    parser = argparse.ArgumentParser(
        description="Benchmark the retention sweep against scratch services.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=10_000_000, help="events to seed (12 months)")
    parser.add_argument("--keep-days", type=int, default=182, help="event retention for the run")
    parser.add_argument("--batch-size", type=int, default=5_000, help="rows per delete batch")
    parser.add_argument("--pause-ms", type=int, default=20, help="pause between batches")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--duration", type=float, default=15.0, help="timed seconds per phase")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--batch", type=int, default=50, help="events per ingest request")
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="API worker processes")
    parser.add_argument("--procs", type=int, default=1, help="load-generator processes")
    parser.add_argument("--pool-rate", type=int, default=4_000, help="events/s to pre-sign")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def main() -> None:
    """Run once and print the figures."""
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    figures = run(args)
    if args.json:
        print(json.dumps(figures, default=str))
        return
    for key, value in figures.items():
        if key != "sweep_report":
            print(f"{key:>24}: {value}")


if __name__ == "__main__":
    main()
