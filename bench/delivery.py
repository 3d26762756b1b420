"""Delivery throughput and latency: ingest commit -> arq worker -> REST, SOAP and XML agency.

A scratch hub (database `hub_bench_<random>`, Redis keys under `bench:<random>:`, temporary
key and media folders, all removed afterwards) gets three agencies, one per adapter kind,
served by one `hub demo-agency` process on loopback. Events are ingested in-process through
the real ingest use case (policy, ledger rows, enqueue after commit) at a steady offered rate
while `hub worker` processes deliver them; each delivery's latency runs from its batch's
commit to the receiver's acknowledgement. An isolation phase then offers a moderate rate three
times: to the healthy agencies alone, again beside a dead agency (connection refused) and a
slow one (answers after 5 s), and alone once more after those two are disabled and idle; it
compares the healthy agencies' p99 beside them with the mean of the two alone phases (A-B-A,
so a machine that got busier or quieter during the run moves both sides). Then one phase per
adapter kind (the other agencies paused) gives the workers' CPU per delivery of that kind,
and a last phase measures the arq queue's own limit: no-op jobs through the same number of
worker processes (deliveries are batched per agency, so they are no longer bound by it).

    .venv/bin/python bench/delivery.py --rate 1000 --duration 15 --workers 2
"""

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import uvloop
from _isolation import SlowReceiver, dead_url
from arq import create_pool
from arq.connections import RedisSettings
from redis.asyncio import Redis

from adapters.xml import generate_signing_identity
from hub.contracts.detection_v1 import BoundingBox, Detection, DetectionEvent, EventBatch
from hub.delivery.agencies import (
    DIRECTORY_TTL_SECONDS,
    add_agency,
    get_agency,
    pause_agency,
    resume_agency,
)
from hub.delivery.schemas import AgencyCreate, Subscription
from hub.ingest.decider import PolicyIngestDecider
from hub.ingest.service import IngestDeps, accept_batch
from hub.kit.db import drop_database, with_database
from hub.runtime import build_services, start_policy, start_services, stop_policy, stop_services
from hub.settings import Settings, load_settings

TARGET_PER_S = 600
TARGET_P99_S = 1.0
TARGET_P50_MODERATE_S = 0.1  # commit->ack p50 at the isolation phase's moderate rate
TARGET_ISOLATION_SLACK = 0.20  # healthy p99 beside failing agencies, over p99 alone
# The isolation ratio is judged only when its phases ran on comparable machines: their idle
# CPU shares within this many points of each other, or every phase left at least
# QUIET_IDLE_PCT idle (then no process waited long for a core). On a shared machine a p99
# otherwise follows the other processes' load.
COMPARABLE_IDLE_POINTS = 10.0
QUIET_IDLE_PCT = 15.0
TARGET_CPU_MS = 1.0  # worker CPU per delivery, averaged over the adapter kinds
AIM_FRACTION_OF_NOOP = 0.40
BATCH = 50  # events per ingest transaction
# camera -> agencies that subscribe to it (each event of camera 2 goes to two agencies).
AGENCIES = {
    "police-north": ("rest", "investigation", ["north"], 3, ["demo-cam-1"]),
    "transit-authority": ("soap", "traffic", ["central"], 2, ["demo-cam-2", "demo-cam-3"]),
    "city-analytics": ("xml", "statistics", ["central"], 1, ["demo-cam-2", "demo-cam-4"]),
}
DELIVERIES_PER_EVENT = {"demo-cam-1": 1, "demo-cam-2": 2, "demo-cam-3": 1, "demo-cam-4": 1}
# The camera only one agency subscribes to, for its one-kind phase: every kind is offered the
# same deliveries/s, and no rows wait for a paused agency to be counted in the next phase
# (through camera 2, SOAP got half the rate and XML took SOAP's leftovers too).
KIND_CAMERA = {
    "police-north": "demo-cam-1",
    "transit-authority": "demo-cam-3",
    "city-analytics": "demo-cam-4",
}
# The isolation phase's agencies beside the healthy ones (release policy knows them).
FAILING_AGENCIES = ("dead-agency", "slow-agency")


def log(message: str) -> None:
    # Wall-clock stamps, to line the phases up with worker logs and loop-lag traces.
    print(f"[bench {time.time():.3f}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its waited-for children, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(v) for v in fields[11:15]) / ticks


@dataclass
class Scratch:
    """What this run owns; `close()` removes it all, also after a failure."""

    base: Settings
    tag: str = field(default_factory=lambda: secrets.token_hex(4))
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="hub-bench-")))
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return msgspec.structs.replace(
            self.base,
            database_url=with_database(self.base.database_url, f"hub_bench_{self.tag}"),
            redis_prefix=f"bench:{self.tag}:",
            media_dir=str(self.folder / "media"),
            secrets_dir=str(self.folder / "keys"),
            policy_dir=str(self.folder / "policies"),
            log_level="warning",
            log_json=False,
            db_pool_max=20,
            backpressure_max_backlog=10_000_000,
            backpressure_max_queue=10_000_000,
            # The bench's receivers listen on loopback, which agencies reach only if allowed.
            agency_allowed_networks="127.0.0.1/32",
        )

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        for name, value in msgspec.structs.asdict(self.settings).items():
            env[f"HUB_{name.upper()}"] = (
                str(value).lower() if isinstance(value, bool) else str(value)
            )
        return env

    def spawn(self, *args: str, log_name: str) -> subprocess.Popen[bytes]:
        sink = (self.folder / f"{log_name}.log").open("wb")
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
            [sys.executable, "-m", "hub.cli.main", *args],
            env=self.env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def __post_init__(self) -> None:
        self.copy_policy()  # the settings name the copy: every user of a Scratch needs it

    def copy_policy(self) -> None:
        """The default bundle, with the isolation phase's failing agencies as recipients."""
        folder = self.folder / "policies"
        shutil.copytree(self.base.policy_dir, folder)
        data = json.loads((folder / "data.json").read_text())
        recipients = data["hub"]["config"]["release"]["recipients"]
        for name in FAILING_AGENCIES:
            recipients[name] = {
                **recipients["police-north"],
                "name": name,
                "jurisdictions": ["north", "central"],
            }
        # The one-kind phases' cameras (KIND_CAMERA) are in the central jurisdiction too.
        release = data["hub"]["config"]["release"]
        release["camera_jurisdictions"].setdefault("demo-cam-4", "central")
        (folder / "data.json").write_text(json.dumps(data))

    def migrate(self) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "hub.cli.main", "migrate"],
            env=self.env(),
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"hub migrate failed: {done.stderr.decode()}")

    async def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        with contextlib.suppress(Exception):
            await drop_database(self.settings.database_url)
        with contextlib.suppress(Exception):
            await self._delete_keys()
        if os.environ.get("BENCH_KEEP_LOGS"):
            log(f"logs kept in {self.folder}")
        else:
            shutil.rmtree(self.folder, ignore_errors=True)

    async def _delete_keys(self) -> None:
        client = Redis.from_url(self.base.redis_url)
        try:
            patterns = [f"{self.settings.redis_prefix}*", "arq:*:bench-noop-*"]
            for pattern in patterns:
                keys = [k async for k in client.scan_iter(match=pattern, count=1000)]
                for start in range(0, len(keys), 1000):
                    await client.delete(*keys[start : start + 1000])
        finally:
            await client.aclose()


def event(rng: random.Random, camera: str, now: datetime) -> DetectionEvent:
    plate = f"{rng.choice('ABCDEFGH')}{rng.choice('KLMNPRST')}-{rng.randint(100, 999)}"
    return DetectionEvent(
        event_id=uuid.uuid4(),
        camera_id=camera,
        captured_at=now - timedelta(seconds=1),
        model_name="demo-synthetic",
        model_version="1",
        detections=[
            Detection(
                label="vehicle",
                confidence=0.9,
                box=BoundingBox(x=0.1, y=0.1, width=0.4, height=0.4),
                track_id="v1",
            ),
            Detection(
                label="plate",
                confidence=0.8,
                box=BoundingBox(x=0.2, y=0.3, width=0.1, height=0.05),
                track_id="v1",
                attributes={"plate_text": plate},
            ),
        ],
    )


async def register_agencies(
    services: Any, receiver: str, secret: str, key: Path, cert: Path
) -> dict[str, dict[str, Any]]:
    configs: dict[str, dict[str, Any]] = {
        "rest": {"url": f"{receiver}/rest/events", "secrets": [secret]},
        "soap": {"wsdl_url": f"{receiver}/soap/agency?wsdl", "operation": "SubmitDetection"},
        "xml": {
            "url": f"{receiver}/xml/alerts",
            "signing_key_file": str(key),
            "signing_cert_file": str(cert),
        },
    }
    for name, (kind, purpose, jurisdictions, clearance, cameras) in AGENCIES.items():
        await add_agency(
            services.db,
            services.delivery.adapters,
            AgencyCreate(
                name=name,
                kind=kind,
                config=configs[kind],
                subscription=Subscription(purpose=purpose, cameras=cameras),
                jurisdictions=jurisdictions,
                clearance=clearance,
                max_concurrency=16,  # a demo receiver gains nothing from more; pools stay small
                rate_per_second=100_000,
            ),
            actor="bench",
        )
    return configs


async def register_node(services: Any) -> uuid.UUID:
    from edge.signing import generate_key, public_key_pem
    from hub.identity import CameraCreate, NodeCreate, add_node

    # The node owns its cameras (ingest rejects events of cameras it does not own).
    cameras = [
        CameraCreate(camera_id="demo-cam-1", jurisdiction="north"),
        CameraCreate(camera_id="demo-cam-2", jurisdiction="central"),
        CameraCreate(camera_id="demo-cam-3", jurisdiction="central"),
        CameraCreate(camera_id="demo-cam-4", jurisdiction="central"),
    ]
    node = await add_node(
        services.db,
        NodeCreate(name="bench-node", public_key=public_key_pem(generate_key()), cameras=cameras),
        actor="bench",
    )
    return node.id


async def ingest_paced(
    services: Any,
    node_id: uuid.UUID,
    *,
    rate: float,
    duration: float,
    cameras: tuple[str, ...] = ("demo-cam-1", "demo-cam-2"),
) -> tuple[dict[str, float], int]:
    """Offer `rate` deliveries/s for `duration` s from `cameras` in turn; commit time of each
    event id, and the deliveries planned."""
    rng = random.Random(7)
    deps = IngestDeps(
        db=services.db,
        future_tolerance=timedelta(seconds=300),
        policy=PolicyIngestDecider(services.policy),
        planner=services.delivery.planner,
    )
    # Cameras alternate; deliveries per event by camera (paused agencies' rows wait).
    per_batch = BATCH * sum(DELIVERIES_PER_EVENT[c] for c in cameras) / len(cameras)
    interval = per_batch / rate
    committed: dict[str, float] = {}
    deliveries = 0
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < duration:
        now = datetime.now(UTC)
        events = [event(rng, cameras[i % len(cameras)], now) for i in range(BATCH)]
        result = await accept_batch(deps, node_id=node_id, batch=EventBatch(events=events))
        at = time.time()
        if result.accepted != len(events):
            raise RuntimeError(f"ingest refused events: {result}")
        for e in events:
            committed[str(e.event_id)] = at
            deliveries += DELIVERIES_PER_EVENT[e.camera_id]
        n += 1
        delay = start + n * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    return committed, deliveries


async def wait_for_inbox(url: str, expected: int, *, within: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=30) as client:
        while True:
            summary = (await client.get(f"{url}/_inbox/")).json()
            if summary["unique"] >= expected or time.monotonic() > deadline:
                items: list[dict[str, Any]] = (await client.get(f"{url}/_inbox/items")).json()
                return items
            await asyncio.sleep(0.5)


async def kind_counts(url: str) -> dict[str, int]:
    """Messages the receiver acknowledged, by adapter kind."""
    async with httpx.AsyncClient(timeout=30) as client:
        items = (await client.get(f"{url}/_inbox/items")).json()
    counts: dict[str, int] = {}
    for item in items:
        counts[item["kind"]] = counts.get(item["kind"], 0) + 1
    return counts


async def open_rows(services: Any, agency: str) -> int:
    """Rows of `agency` not yet at an end state."""
    async with services.db.connection() as conn:
        return int(
            await conn.fetchval(
                """SELECT count(*) FROM delivery d JOIN agency a ON a.id = d.agency_id
                    WHERE a.name = $1 AND d.status IN ('pending', 'retrying', 'in_flight')""",
                agency,
            )
        )


async def received(url: str) -> int:
    """Distinct messages the receiver has acknowledged so far."""
    async with httpx.AsyncClient(timeout=30) as client:
        return int((await client.get(f"{url}/_inbox/")).json()["unique"])


async def healthy_latency(
    services: Any,
    node_id: uuid.UUID,
    receiver: str,
    workers: list[subprocess.Popen[bytes]],
    *,
    rate: float,
    duration: float,
) -> dict[str, Any]:
    """Commit->ack p50/p99 of the healthy agencies' deliveries at `rate` offered."""
    before = await received(receiver)
    idle_before, started = machine_idle(), datetime.now(UTC)
    cpu_before = sum(cpu_seconds(p.pid) for p in workers)
    pg_before = await postgres_cpu(services)
    committed, expected = await ingest_paced(services, node_id, rate=rate, duration=duration)
    items = await wait_for_inbox(receiver, before + expected, within=duration * 4 + 60)
    pg_seconds = cpu_since(pg_before, await postgres_cpu(services))
    by_kind: dict[str, list[float]] = {}
    for item in items:
        if item.get("event_id") in committed:
            by_kind.setdefault(item["kind"], []).append(item["at"] - committed[item["event_id"]])
    latencies = [latency for kind in by_kind.values() for latency in kind]
    return {
        "delivered": len(latencies),
        "expected": expected,
        "p50_s": round(percentile(latencies, 0.50), 3),
        "p99_s": round(percentile(latencies, 0.99), 3),
        "p99_by_kind": {k: round(percentile(v, 0.99), 3) for k, v in sorted(by_kind.items())},
        "idle_pct": idle_share(idle_before, machine_idle()),
        # Every agency's work, the failing ones' too, per healthy delivery: what they cost.
        "worker_cpu_ms": round(
            1000
            * (sum(cpu_seconds(p.pid) for p in workers) - cpu_before)
            / max(1, len(items) - before),
            3,
        ),
        # The scratch database's server processes (ingest's statements too): what a ledger
        # holding other agencies' rows would make every statement cost.
        "postgres_cpu_ms": round(1000 * pg_seconds / max(1, len(items) - before), 3),
        **(await healthy_attempts(services, since=started)),
    }


async def healthy_attempts(services: Any, *, since: datetime) -> dict[str, Any]:
    """The healthy agencies' attempts since `since` that were not deliveries (a retry adds its
    backoff to a delivery's latency), and their slowest attempt: what a p99 may be made of."""
    async with services.db.connection() as conn:
        row = await conn.fetchrow(
            """SELECT count(*) FILTER (WHERE t.outcome <> 'delivered') AS failed,
                      coalesce(max(t.duration_ms), 0) AS slowest_ms
                 FROM delivery_attempt t JOIN delivery d ON d.id = t.delivery_id
                 JOIN agency a ON a.id = d.agency_id
                WHERE a.name = ANY($1) AND t.started_at >= $2""",
            list(AGENCIES),
            since,
        )
    return {"failed_attempts": row["failed"], "slowest_attempt_ms": row["slowest_ms"]}


async def postgres_cpu(services: Any) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL process serving the scratch database (client
    backends and autovacuum workers alike), by pid, from /proc: the server runs on this
    machine. A backend that exits between two readings takes its CPU with it (the pools keep
    theirs for the whole run)."""
    async with services.db.connection() as conn:
        pids = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        )
    found: dict[int, float] = {}
    for row in pids:
        with contextlib.suppress(OSError):
            found[row["pid"]] = cpu_seconds(row["pid"])
    return found


def cpu_since(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds the processes of `after` spent since `before` (new ones from zero)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def machine_idle() -> tuple[int, int]:
    """(idle, total) CPU ticks of the whole machine so far, from /proc/stat."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return ticks[3] + ticks[4], sum(ticks)  # idle + iowait


def idle_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Percent of the machine's CPU left idle between two `machine_idle` readings: on a shared
    machine, what the phase's latency had to share the cores with."""
    total = after[1] - before[1]
    return round(100 * (after[0] - before[0]) / total, 1) if total else float("nan")


async def isolation_phase(
    services: Any,
    node_id: uuid.UUID,
    receiver: str,
    secret: str,
    workers: list[subprocess.Popen[bytes]],
    *,
    rate: float,
    duration: float,
) -> dict[str, Any]:
    """Healthy agencies' latency alone, beside a dead and a slow (5 s) agency, then alone
    again once the failing agencies are gone (A-B-A)."""
    log(f"offering {rate}/s to the healthy agencies alone")
    alone = await healthy_latency(
        services, node_id, receiver, workers, rate=rate, duration=duration
    )
    slow = SlowReceiver(delay=5.0)
    failing = dict(zip(FAILING_AGENCIES, [dead_url(), await slow.start()], strict=True))
    try:
        for name, url in failing.items():
            await add_agency(
                services.db,
                services.delivery.adapters,
                AgencyCreate(
                    name=name, kind="rest", config={"url": url, "secrets": [secret]},
                    subscription=Subscription(
                        purpose="investigation", cameras=["demo-cam-1", "demo-cam-2"]
                    ),
                    jurisdictions=["north", "central"], clearance=3, max_concurrency=16,
                    rate_per_second=100_000,
                ),
                actor="bench",
            )  # fmt: skip
        log(f"offering {rate}/s again, beside a dead and a slow (5 s) agency")
        beside = await healthy_latency(
            services, node_id, receiver, workers, rate=rate, duration=duration
        )
        deadline = time.monotonic() + 15  # show the slow agency was served, however slowly
        while not slow.answered and time.monotonic() < deadline:  # noqa: ASYNC110 - a counter
            await asyncio.sleep(0.2)
        for name in failing:
            await pause_agency(services.db, name, reason="bench: phase over", actor="bench")
        dead_attempts = await attempt_count(services, "dead-agency")
        log(f"failing agencies' rows: {await statuses(services, list(failing))}")
        await retire(services, list(failing))
        settled = await wait_until_idle(services, list(failing), within=60)
    finally:
        await slow.stop()
    log(f"offering {rate}/s to the healthy agencies alone again (failing ones idle: {settled})")
    after = await healthy_latency(
        services, node_id, receiver, workers, rate=rate, duration=duration
    )
    return {
        "rate": rate, "alone": alone, "beside": beside, "alone_after": after,
        "p99_ratio": ratio(beside["p99_s"], (alone["p99_s"] + after["p99_s"]) / 2),
        "p99_ratio_before": ratio(beside["p99_s"], alone["p99_s"]),
        "p99_ratio_after": ratio(beside["p99_s"], after["p99_s"]),
        "slow_answered": slow.answered, "dead_attempts": dead_attempts,
    }  # fmt: skip


def ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 3) if denominator else float("nan")


async def retire(services: Any, agencies: list[str]) -> None:
    """Disable `agencies`: ingest plans no more rows for them (pausing still would), so the
    second "alone" phase costs what the first did."""
    from hub.delivery import repository

    for name in agencies:
        read, _ = await get_agency(services.db, name)
        async with services.db.transaction() as conn:
            await repository.set_agency_status(
                conn, read.id, status="disabled", reason="bench: phase over",
                only_if=["active", "paused"],
            )  # fmt: skip


async def wait_until_idle(services: Any, agencies: list[str], *, within: float) -> bool:
    """Wait until none of `agencies`' rows is claimed (their last batches have ended, every
    send answered or given up); whether that happened within `within` s."""
    deadline = time.monotonic() + within
    # A worker may start one more batch on its cached view of the agency (still active).
    await asyncio.sleep(DIRECTORY_TTL_SECONDS + 0.5)
    while time.monotonic() < deadline:
        found = await statuses(services, agencies)
        if not any(counts.get("in_flight") for counts in found.values()):
            return True
        await asyncio.sleep(0.5)
    return False


async def statuses(services: Any, agencies: list[str]) -> dict[str, dict[str, int]]:
    """Rows of each agency by status."""
    async with services.db.connection() as conn:
        rows = await conn.fetch(
            """SELECT a.name, d.status, count(*) AS n FROM delivery d
                 JOIN agency a ON a.id = d.agency_id WHERE a.name = ANY($1)
                GROUP BY a.name, d.status""",
            agencies,
        )
    found: dict[str, dict[str, int]] = {}
    for row in rows:
        found.setdefault(row["name"], {})[row["status"]] = row["n"]
    return found


async def attempt_count(services: Any, agency: str) -> int:
    """Attempts recorded for `agency` (each a refused connection for the dead one)."""
    async with services.db.connection() as conn:
        return int(
            await conn.fetchval(
                """SELECT count(*) FROM delivery_attempt t JOIN delivery d ON d.id = t.delivery_id
                    JOIN agency a ON a.id = d.agency_id WHERE a.name = $1""",
                agency,
            )
        )


async def only(services: Any, agency: str) -> None:
    """Pause every bench agency but `agency` (resumed, with what waited for it)."""
    kit = services.delivery
    for name in AGENCIES:
        if name == agency:
            await resume_agency(services.db, kit.breaker, kit.queue, name, actor="bench")
        else:
            await pause_agency(services.db, name, reason="bench: one kind at a time", actor="bench")


async def kind_phase(
    services: Any,
    node_id: uuid.UUID,
    workers: list[subprocess.Popen[bytes]],
    receiver: str,
    *,
    agency: str,
    rate: float,
    duration: float,
) -> dict[str, float]:
    """Worker CPU per delivery while only `agency` (one adapter kind) receives."""
    kind = AGENCIES[agency][0]
    await only(services, agency)
    before = (await kind_counts(receiver)).get(kind, 0)
    cpu_before = sum(cpu_seconds(p.pid) for p in workers)
    await ingest_paced(
        services, node_id, rate=rate, duration=duration, cameras=(KIND_CAMERA[agency],)
    )
    deadline = time.monotonic() + duration * 4 + 60
    while await open_rows(services, agency) and time.monotonic() < deadline:  # noqa: ASYNC110 - polls the database
        await asyncio.sleep(0.2)
    cpu = sum(cpu_seconds(p.pid) for p in workers) - cpu_before
    delivered = (await kind_counts(receiver)).get(kind, 0) - before
    return {
        "delivered": delivered,
        "worker_cpu_ms_per_delivery": round(1000 * cpu / max(1, delivered), 3),
    }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def noop(ctx: dict[str, Any]) -> None:
    """The no-op job of the queue-limit phase."""


def run_noop_workers(code: str, workers: int) -> float:
    """Run burst workers until the queue is empty; seconds it took."""
    start_at = time.monotonic()
    procs = [
        subprocess.Popen(  # noqa: S603 - our own interpreter and code
            [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(workers)
    ]
    try:
        for proc in procs:
            proc.wait(timeout=300)
    finally:
        for proc in procs:  # never leave a polling worker behind
            if proc.poll() is None:
                proc.kill()
    return time.monotonic() - start_at


async def noop_rate(scratch: Scratch, *, workers: int, jobs: int) -> float:
    """No-op jobs/s through `workers` arq worker processes (same Redis, same machine)."""
    queue = f"{scratch.settings.redis_prefix}noop"
    pool = await create_pool(RedisSettings.from_dsn(scratch.base.redis_url))
    try:
        # Through arq's own enqueue (slower to fill, but nothing here copies its job format).
        for i in range(jobs):
            await pool.enqueue_job(
                "noop", _job_id=f"bench-noop-{scratch.tag}-{i}", _queue_name=queue
            )
        # The Worker is built inside the running loop: arq binds to the loop it finds.
        code = (
            "import asyncio, sys\n"
            "from arq.worker import Worker\n"
            "from arq.connections import RedisSettings\n"
            "sys.path.insert(0, 'bench')\n"
            "from delivery import noop\n"
            "async def main():\n"
            f"    w = Worker(functions=[noop], queue_name={queue!r}, burst=True, max_jobs=50,"
            f" keep_result=0, poll_delay=0.05, handle_signals=False,"
            f" redis_settings=RedisSettings.from_dsn({scratch.base.redis_url!r}))\n"
            "    await w.main()\n"
            "asyncio.run(main())\n"
        )
        elapsed = await asyncio.to_thread(run_noop_workers, code, workers)
    finally:
        await pool.aclose()
    # Process start-up (~0.5 s) is in `elapsed`; it makes the figure a slight underestimate.
    return jobs / elapsed


def secret_file(folder: Path, secret: str) -> Path:
    """The webhook secret in a 0600 file: the demo agency never takes it on its command line."""
    path = folder / "webhook-secrets"
    path.touch(mode=0o600)
    path.write_text(secret + "\n")
    return path


async def run(args: argparse.Namespace) -> dict[str, Any]:
    scratch = Scratch(load_settings())
    try:
        scratch.migrate()
        if args.global_due_index:
            await put_back_global_due_index(scratch.settings.database_url)
            log("global due index put back: the reference of before migration 0023")
        settings = scratch.settings
        port = free_port()
        receiver = f"http://127.0.0.1:{port}"
        webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        key, cert = generate_signing_identity(scratch.folder / "xml", "bench")
        agency = scratch.spawn(
            "demo-agency", "--port", str(port),
            "--secret-file", str(secret_file(scratch.folder, webhook_secret)),
            "--xml-cert", str(cert), log_name="agency",
        )  # fmt: skip
        services = build_services(settings)
        await start_services(services)
        watcher = await start_policy(services, role="api")
        try:
            configs = await register_agencies(services, receiver, webhook_secret, key, cert)
            node_id = await register_node(services)
            workers = [scratch.spawn("worker", log_name=f"worker{i}") for i in range(args.workers)]
            await asyncio.sleep(2.0)  # workers connect and load policy
            cpu_before = {p.pid: cpu_seconds(p.pid) for p in [*workers, agency]}
            log(f"offering {args.rate}/s deliveries for {args.duration} s")
            t0 = time.time()
            committed, expected = await ingest_paced(
                services, node_id, rate=args.rate, duration=args.duration
            )
            items = await wait_for_inbox(receiver, expected, within=args.duration * 4 + 60)
            cpu = {p.pid: cpu_seconds(p.pid) - cpu_before[p.pid] for p in [*workers, agency]}
            isolation = await isolation_phase(
                services, node_id, receiver, webhook_secret, workers,
                rate=args.isolation_rate, duration=args.isolation_duration,
            )  # fmt: skip
            by_kind_cpu = {}
            for name, (kind, *_) in AGENCIES.items():
                log(f"offering {args.kind_rate}/s to {name} ({kind}) alone")
                by_kind_cpu[kind] = await kind_phase(
                    services, node_id, workers, receiver, agency=name,
                    rate=args.kind_rate, duration=args.kind_duration,
                )  # fmt: skip
            for worker in workers:  # quiet machine for the cost breakdown
                worker.terminate()
            log("measuring where a delivery's CPU goes (sequential, in this process)")
            costs = await cost_breakdown(services, configs, count=args.cost_samples)
        finally:
            await stop_policy(services, watcher)
            await stop_services(services)
        latencies = [
            item["at"] - committed[item["event_id"]]
            for item in items
            if item.get("event_id") in committed
        ]
        last_ack = max(item["at"] for item in items) if items else t0
        by_kind: dict[str, int] = {}
        for item in items:
            by_kind[item["kind"]] = by_kind.get(item["kind"], 0) + 1
        log("measuring the no-op job rate of arq on this machine")
        noop_per_s = await noop_rate(scratch, workers=args.workers, jobs=args.noop_jobs)
        delivered = len(items)
        rate = delivered / (last_ack - t0) if delivered else 0.0
        worker_cpu = sum(cpu[p.pid] for p in workers)
        return {
            "offered_per_s": args.rate,
            "duration_s": args.duration,
            "workers": args.workers,
            "expected": expected,
            "delivered": delivered,
            "by_kind": by_kind,
            "deliveries_per_s": round(rate, 1),
            "p50_s": round(percentile(latencies, 0.50), 3),
            "p99_s": round(percentile(latencies, 0.99), 3),
            "max_s": round(max(latencies, default=float("nan")), 3),
            "noop_jobs_per_s": round(noop_per_s, 1),
            "fraction_of_noop": round(rate / noop_per_s, 3) if noop_per_s else None,
            "worker_cpu_ms_per_delivery": round(1000 * worker_cpu / max(1, delivered), 2),
            "receiver_cpu_ms_per_delivery": round(1000 * cpu[agency.pid] / max(1, delivered), 2),
            "by_kind_cpu": by_kind_cpu,
            "isolation": isolation,
            "cores": os.cpu_count(),
            "cpu_ms_breakdown": costs,
        }
    finally:
        await scratch.close()


async def cost_breakdown(
    services: Any, configs: dict[str, dict[str, Any]], *, count: int
) -> dict[str, float]:
    """CPU milliseconds per call of each piece of an attempt, measured one at a time."""
    from adapters.base import Message
    from hub.delivery.kit import release_hash_key
    from hub.policy.release import release
    from hub.policy.schemas import Recipient

    rng = random.Random(3)
    # As the worker releases it: the hub adds the sending node to the record first.
    record = msgspec.to_builtins(event(rng, "demo-cam-2", datetime.now(UTC)))
    record["node_id"] = str(uuid.uuid4())
    recipient = Recipient(
        id="transit-authority", kind="agency", jurisdictions=["central"], clearance=2
    )
    key = release_hash_key(services.settings)
    costs: dict[str, float] = {}

    async def measure(name: str, call: Any) -> None:
        start = time.process_time()
        for _ in range(count):
            await call()
        costs[name] = round(1000 * (time.process_time() - start) / count, 3)

    async def decide(cacheable: bool) -> Any:
        return await release(
            services.policy, recipient=recipient, purpose="traffic",
            data_class="detection_event", record=record, hash_master_key=key, cacheable=cacheable,
        )  # fmt: skip

    await measure("release_uncached", lambda: decide(False))
    await measure("release_cached", lambda: decide(True))
    for kind, config in configs.items():
        adapter = services.delivery.adapters[kind]
        parsed = adapter.parse_config(config)

        async def send(adapter: Any = adapter, parsed: Any = parsed) -> None:
            message = Message(
                delivery_id=uuid.uuid4(), agency="bench", attempt=1, decision_id="bench",
                record=record,
            )  # fmt: skip
            await adapter.deliver(message, parsed)

        await send()  # warm: WSDL load, key load, connection
        await measure(f"adapter_{kind}", send)
    return costs


def render(report: dict[str, Any]) -> str:
    ok_rate = report["deliveries_per_s"] >= TARGET_PER_S
    lines = [
        f"delivery bench: {report['workers']} worker process(es), {report['cores']} cores, "
        f"offered {report['offered_per_s']}/s for {report['duration_s']} s",
        f"  delivered            {report['delivered']} of {report['expected']} {report['by_kind']}",
        f"  deliveries/s         {report['deliveries_per_s']}  "
        f"(goal >= {TARGET_PER_S}: {'met' if ok_rate else 'MISSED'})",
        f"  commit->ack p50/p99  {report['p50_s']} s / {report['p99_s']} s  "
        f"(max {report['max_s']} s; a saturation run: the latency goal is at "
        f"{report['isolation']['rate']}/s, below)",
        f"  arq no-op jobs/s     {report['noop_jobs_per_s']}  -> deliveries are "
        f"{report['fraction_of_noop']} of it (aim {AIM_FRACTION_OF_NOOP})",
        f"  CPU per delivery     worker {report['worker_cpu_ms_per_delivery']} ms, "
        f"receiver {report['receiver_cpu_ms_per_delivery']} ms",
        *by_kind_lines(report["by_kind_cpu"]),
        *isolation_lines(report["isolation"]),
        "  where a worker's CPU goes (ms per call, one at a time, this process):",
        *(f"    {name:20} {ms}" for name, ms in report["cpu_ms_breakdown"].items()),
    ]
    return "\n".join(lines)


def by_kind_lines(by_kind: dict[str, dict[str, float]]) -> list[str]:
    """Worker CPU per delivery of each adapter kind (one agency receiving at a time)."""
    figures = [v["worker_cpu_ms_per_delivery"] for v in by_kind.values()]
    mean = sum(figures) / len(figures) if figures else float("nan")
    verdict = "met" if mean <= TARGET_CPU_MS else "MISSED"
    lines = [
        f"    {kind:5} alone        worker {v['worker_cpu_ms_per_delivery']} ms "
        f"({int(v['delivered'])} deliveries)"
        for kind, v in by_kind.items()
    ]
    return [*lines, f"    mean of the kinds    {mean:.3f} ms (goal <= {TARGET_CPU_MS}: {verdict})"]


def isolation_lines(isolation: dict[str, Any]) -> list[str]:
    """Healthy agencies' latency alone, beside a dead and a slow agency, and alone again."""
    alone, beside, after = isolation["alone"], isolation["beside"], isolation["alone_after"]
    phases = {"alone": alone, "beside": beside, "alone again": after}
    ok_latency = alone["p50_s"] < TARGET_P50_MODERATE_S and alone["p99_s"] < TARGET_P99_S
    idle = [p["idle_pct"] for p in phases.values()]
    verdict = "met" if isolation["p99_ratio"] <= 1 + TARGET_ISOLATION_SLACK else "MISSED"
    if max(idle) - min(idle) > COMPARABLE_IDLE_POINTS and min(idle) < QUIET_IDLE_PCT:
        verdict = f"not judged: machine idle {min(idle)}-{max(idle)} % across the phases"
    return [
        f"  at {isolation['rate']}/s offered, healthy agencies (commit->ack p50/p99):",
        f"    alone                {alone['p50_s']} s / {alone['p99_s']} s "
        f"({alone['delivered']} of {alone['expected']}, machine idle {alone['idle_pct']} %; "
        f"goal p50 < {TARGET_P50_MODERATE_S} s, "
        f"p99 < {TARGET_P99_S} s: {'met' if ok_latency else 'MISSED'})",
        f"    beside dead + slow   {beside['p50_s']} s / {beside['p99_s']} s "
        f"({beside['delivered']} of {beside['expected']}, idle {beside['idle_pct']} %; "
        f"slow agency answered "
        f"{isolation['slow_answered']}, dead agency refused {isolation['dead_attempts']})",
        f"    alone again          {after['p50_s']} s / {after['p99_s']} s "
        f"({after['delivered']} of {after['expected']}, idle {after['idle_pct']} %; failing "
        "agencies disabled and idle)",
        f"    p99 beside / alone   {isolation['p99_ratio']} over the mean of both alone phases "
        f"(goal <= {1 + TARGET_ISOLATION_SLACK}: {verdict}); "
        f"over the first {isolation['p99_ratio_before']}, the second "
        f"{isolation['p99_ratio_after']}",
        *(
            f"    {name:20} worker CPU {p['worker_cpu_ms']} ms, PostgreSQL "
            f"{p['postgres_cpu_ms']} ms per healthy delivery; p99 by "
            f"kind {p['p99_by_kind']}; failed attempts {p['failed_attempts']}, slowest "
            f"attempt {p['slowest_attempt_ms']} ms"
            for name, p in phases.items()
        ),
    ]


async def put_back_global_due_index(url: str) -> None:
    """The reference of issue 16: the global due index migration 0023 dropped, on which the
    planner answered one agency's claim by walking every agency's due rows."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """CREATE INDEX delivery_due_idx ON delivery (next_attempt_at)
                WHERE status IN ('pending', 'retrying', 'in_flight')"""
        )
    finally:
        await conn.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=1000, help="Offered deliveries per second.")
    parser.add_argument("--duration", type=float, default=15, help="Seconds of offered load.")
    parser.add_argument("--workers", type=int, default=2, help="hub worker processes.")
    parser.add_argument("--noop-jobs", type=int, default=20_000, help="Jobs in the no-op phase.")
    parser.add_argument(
        "--kind-rate", type=float, default=300, help="Offered/s in each one-kind phase."
    )
    parser.add_argument(
        "--kind-duration", type=float, default=10, help="Seconds of each one-kind phase."
    )
    parser.add_argument(
        "--isolation-rate", type=float, default=300, help="Offered/s in the isolation phase."
    )
    parser.add_argument(
        "--isolation-duration", type=float, default=10, help="Seconds of each isolation run."
    )
    parser.add_argument(
        "--global-due-index",
        action="store_true",
        help="Put back the global due index of before migration 0023 (a reference run).",
    )
    parser.add_argument("--cost-samples", type=int, default=300, help="Calls per cost figure.")
    parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    # The worker's loop (hub/worker.py), so the in-process cost breakdown is priced alike.
    report = uvloop.run(run(args))
    print(json.dumps(report) if args.json else render(report))


if __name__ == "__main__":
    main()
