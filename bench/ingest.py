"""Ingest throughput: signed batches through `POST /v1/edge/events`, against raw COPY.

Everything runs against scratch resources made for this run and removed afterwards, even on
failure: a database `hub_bench_<random>` on the server of HUB_DATABASE_URL, Redis keys under
`bench:<random>:`, a registered edge node and a `hub api` subprocess on a free loopback port.
The load generator runs in its own processes (so its GIL does not cap the figure), but it
shares the machine's cores with the API, PostgreSQL and Redis; the output says how the CPU
was split. With `--feed-readers N`, N agency clients page the REST feed in processes of their
own during the same timed window; `--compare-readers` times ingest alone, beside them and
alone again (A-B-A) and compares the p99 beside them with the mean of the two alone phases;
with `--rounds N`, N such pairs and a last alone phase, compared by medians.
See bench/README.md for what each figure means.

    .venv/bin/python bench/ingest.py --clients 8 --duration 15 --workers 2
    .venv/bin/python bench/ingest.py --feed-readers 20 --compare-readers [--rounds 3]
    .venv/bin/python bench/ingest.py --clients 4 --duration 10 --runs 5
"""

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import httpx
import msgspec
from _feedkit import (
    TRANSPORT_ERRORS,
    Refused,
    agency_token,
    get_page,
    register_agencies,
    session,
)
from _replica import PrivatePair, lower_priority
from redis.asyncio import Redis

from edge.signing import RequestSigner, load_private_key
from hub.contracts.detection_v1 import EventBatch
from hub.ingest.rules import prepare
from hub.settings import Settings, load_settings

EVENTS_PATH = "/v1/edge/events"
TARGET_EVENTS_PER_S = 10_000  # issue 17: at 4 clients
TARGET_P99_MS = 100.0
AIM_FRACTION_OF_RAW = 0.40  # of batched COPY (issue 17)
# Settings a run takes from the caller's environment, to compare them (all others are the
# bench's own).
TRIED_SETTINGS = ("HUB_FEEDS_PAGE_", "HUB_FEEDS_SEQUENCE_LINGER_MS", "HUB_API_KEEPALIVE_REQUESTS")
# The hub accepts a signature whose `created` lies within 300 s of its clock; runs longer
# than this build and sign every body while sending instead of pre-signing them.
PRESIGN_MAX_SECONDS = 240.0
# About 470 bytes an event: caps the pre-signed bodies of one process near 190 MB.
PRESIGN_MAX_EVENTS_PER_PROC = 400_000
RAW_TABLE = "bench_raw_event"
RAW_COLUMNS = (
    "node_id", "event_id", "captured_at", "camera_id", "classes", "max_confidence",
    "media_sha256", "disposition", "content_sha256", "payload",
)  # fmt: skip
# The default policy's classes, scored above their minimums: the bench measures the store path.
LABELS = ("person", "person", "vehicle", "vehicle", "face", "plate")
CLK_TCK = os.sysconf("SC_CLK_TCK")
# The bench agencies whose jurisdiction (central) holds the bench node's cameras: each may be
# offered every ingested event. Registering them makes ingest plan their deliveries too.
READER_AGENCIES = ("transit-authority", "city-analytics")
# They are pull-only here: no worker runs, so the push deliveries ingest plans for them would
# pile up until back-pressure (100,000 due rows) refused ingest with 503s, in the second phase
# of a comparison most of all. A trigger in the scratch database drops each planned row
# (ingest still runs its planning query, which matches them); nothing else writes `delivery`.
PULL_ONLY_SQL = """
CREATE FUNCTION bench_pull_only() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END';
CREATE TRIGGER bench_pull_only BEFORE INSERT ON delivery
    FOR EACH ROW EXECUTE FUNCTION bench_pull_only();
"""
# A reader whose page failed waits this long before asking again (no hot loop on errors).
READER_ERROR_PAUSE = 0.05
OTHER_CPU_WARNING = 15.0  # % of a core used by processes outside this run
# --compare-readers: ingest alone, beside the readers, alone again (A-B-A). Each phase ingests
# into a fuller table than the one before it (the partition and its indexes grow by ~100,000
# rows a phase), and other processes' load drifts over the run: with an alone phase on each
# side, a drift that is linear in time moves both sides of the ratio alike.
# With --rounds N, N alone/beside pairs and a last alone phase (A-B-A-B-...-A): the ratio is
# the median beside p99 over the median alone p99, so one phase disturbed by another tenant
# of the machine moves it less. One round is the A-B-A above (the median of two alone
# phases is their mean).
SHUT_OUT_PHASE = "readers shut out"


def compare_phases(rounds: int) -> list[tuple[str, bool]]:
    """The phases of --compare-readers: (name, with readers), alone first and last."""
    if rounds == 1:
        return [("alone", False), ("beside readers", True), ("alone again", False)]
    phases: list[tuple[str, bool]] = []
    for n in range(1, rounds + 1):
        phases += [(f"alone {n}", False), (f"beside readers {n}", True)]
    return [*phases, (f"alone {rounds + 1}", False)]


# The ratio is printed but "not judged" when other processes' share of the machine moved more
# than this many points of a core between the phases: a p99 over ~1,000 batches is set by the
# few longest waits for a core, so it follows their load, not the readers.
OTHER_CPU_DRIFT_POINTS = 25.0
# --shut-out-reference: a last phase beside the same readers with the feed page budget beside
# ingest at 1 ms/s (ADR 0026), i.e. every page refused: what the readers cost ingest when
# they get nothing (their refused requests, their process), on an API restarted for it.
SHUT_OUT_ENV = {"HUB_FEEDS_PAGE_CPU_MS_BESIDE_INGEST": "1"}
# --reader-api: the readers' own API processes, as docs/deploy.md sets them up ("Feed readers
# on API processes of their own"): their page budget open, so the operating system's
# priorities (nice), not the budget, put ingest first.
# --split-cores: two hosts of one core each on a 2-core machine. Ingest's API and the primary
# on the first; the readers' API, the replica, and the load and reader processes (which stand
# for the edge nodes and the agencies, on machines of their own) on the second.
INGEST_SIDE, FAR_SIDE = {0}, {1}
READER_API_ENV = {
    "HUB_FEEDS_PAGE_CPU_MS_BESIDE_INGEST": "700",
    "HUB_FEEDS_PAGE_HOST_IDLE_PERCENT": "0",
}
# Dead rows a phase left, per table (pg_stat_user_tables), for the tables with most of them.
DEAD_ROWS_SQL = """
SELECT relname, n_dead_tup FROM pg_stat_user_tables
WHERE n_dead_tup >= 1000 ORDER BY n_dead_tup DESC LIMIT 4
"""


def log(message: str) -> None:
    """Progress goes to stderr, so stdout holds only the figures (or the JSON)."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Events


# One edge node posts for the cameras of its own box; a model the default policy knows, so the
# events take the accept path (an unknown model would quarantine every one).
CAMERAS = 4
MODEL = "yolov8n-hub"


class EventMaker:
    """Fresh, realistic `hub.detection.v1` events: 1-3 detections, some plates with text."""

    def __init__(self, seed: int, *, cameras: int = CAMERAS) -> None:
        self._rng = random.Random(seed)
        self._cameras = cameras

    def event(self, now: datetime) -> dict[str, Any]:
        """One event captured up to 30 s before `now`, with a new id."""
        rng = self._rng
        event: dict[str, Any] = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "camera_id": f"site-1:cam-{rng.randint(1, self._cameras):02d}",
            "captured_at": (now - timedelta(seconds=rng.uniform(0.2, 30.0))).isoformat(),
            "model_name": MODEL,
            "model_version": "8.1.0",
            "detections": [self._detection() for _ in range(rng.randint(1, 3))],
        }
        if rng.random() < 0.3:
            event["media"] = [{"sha256": f"{rng.getrandbits(256):064x}", "kind": "snapshot"}]
        return event

    def body(self, size: int) -> bytes:
        """A batch body of `size` fresh events."""
        now = datetime.now(UTC)
        return msgspec.json.encode({"events": [self.event(now) for _ in range(size)]})

    def _detection(self) -> dict[str, Any]:
        rng = self._rng
        label = rng.choice(LABELS)
        width, height = round(rng.uniform(0.02, 0.4), 4), round(rng.uniform(0.02, 0.4), 4)
        detection: dict[str, Any] = {
            "label": label,
            "confidence": round(rng.uniform(0.6, 0.99), 3),
            "box": {
                "x": round(rng.uniform(0, 1 - width), 4),
                "y": round(rng.uniform(0, 1 - height), 4),
                "width": width,
                "height": height,
            },
            "track_id": f"t{rng.randint(1, 99_999)}",
        }
        if label == "plate":
            letters = "ABCDEFGHJKLMNPRSTVWXYZ"
            text = f"{rng.choice(letters)}{rng.choice(letters)}-{rng.randint(100, 999)}-"
            detection["attributes"] = {"plate_text": text + rng.choice(letters) * 2}
        return detection


# ---------------------------------------------------------------------------------------------
# Load generator (runs in child processes)


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """What one load-generator process does."""

    index: int
    clients: int
    base_url: str
    key_id: str
    key_pem: bytes
    batch: int
    warmup: float
    duration: float
    presigned: int  # bodies to build and sign before the clock starts
    cameras: int = 4
    # Open loop (`--ingest-rate`): seconds between one client's batches, and where this
    # process's first client falls among all of them (their first batches are spread over one
    # interval). 0: closed loop, each client sends its next batch when the last is answered.
    interval: float = 0.0
    first_client: int = 0
    all_clients: int = 1


class Counts(msgspec.Struct):
    """The counts of a `BatchResult` (the per-event results are skipped)."""

    accepted: int
    duplicate: int
    rejected: int


@dataclass(slots=True)
class Tally:
    """What one process saw inside the timed window."""

    latencies_ms: list[float] = field(default_factory=list)
    requests_ok: int = 0
    events_accepted: int = 0
    events_not_accepted: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # a Counter would not survive asdict
    built_live: int = 0

    def record(self, status: str, counts: Counts | None, seconds: float) -> None:
        """Count one finished request."""
        if counts is None:
            self.errors[status] = self.errors.get(status, 0) + 1
            return
        self.requests_ok += 1
        self.latencies_ms.append(seconds * 1000)
        self.events_accepted += counts.accepted
        self.events_not_accepted += counts.duplicate + counts.rejected


class BodySource:
    """Signed request bodies, each used once (a signature carries a one-time nonce)."""

    def __init__(self, plan: LoadPlan) -> None:
        self._plan = plan
        self._maker = EventMaker(
            seed=plan.index * 7919 + secrets.randbits(32), cameras=plan.cameras
        )
        key = load_private_key(plan.key_pem)
        self._signer = RequestSigner(key_id=plan.key_id, private_key=key)
        self._url = plan.base_url + EVENTS_PATH
        self._ready: list[tuple[bytes, dict[str, str]]] = []
        self.built_live = 0

    def prebuild(self) -> None:
        """Build and sign the planned number of bodies now, before the clock starts."""
        self._ready = [self._build() for _ in range(self._plan.presigned)]
        self._ready.reverse()

    def take(self) -> tuple[bytes, dict[str, str]]:
        """The next unused body and its headers; built on the spot once the stock runs out."""
        if self._ready:
            return self._ready.pop()
        self.built_live += 1
        return self._build()

    def _build(self) -> tuple[bytes, dict[str, str]]:
        body = self._maker.body(self._plan.batch)
        headers = self._signer.sign(method="POST", url=self._url, body=body)
        return body, {**headers, "Content-Type": "application/json"}


async def post_once(
    client: aiohttp.ClientSession, body: bytes, headers: dict[str, str]
) -> tuple[str, Counts | None]:
    """Send one batch; the status (or exception name) and, on 200, the counts."""
    try:
        async with client.post(EVENTS_PATH, data=body, headers=headers) as response:
            content = await response.read()
            status = response.status
    except TRANSPORT_ERRORS as exc:
        return type(exc).__name__, None
    if status != 200:
        return str(status), None
    return "200", msgspec.json.decode(content, type=Counts)


async def run_client(
    plan: LoadPlan, source: BodySource, window: tuple[float, float], tally: Tally, *, due: float
) -> None:
    """One keep-alive HTTP/1.1 connection posting batches until the window ends: back to back,
    or (open loop) each `plan.interval` after the one before from `due` on. An open-loop batch's
    latency counts from when it was due, not from when it was sent: a batch held up behind a
    slow answer would otherwise hide the wait (coordinated omission)."""
    async with session(plan.base_url, 1, timeout=30.0) as client:
        while time.monotonic() < window[1]:
            body, headers = source.take()
            if plan.interval:
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                started, due = due, due + plan.interval
            else:
                started = time.monotonic()
            status, counts = await post_once(client, body, headers)
            finished = time.monotonic()
            if window[0] <= finished <= window[1]:
                tally.record(status, counts, finished - started)


async def drive(plan: LoadPlan, source: BodySource, start_at: float) -> Tally:
    """Run this process's clients from `start_at`; count only the timed window."""
    measure_from = start_at + plan.warmup
    window = (measure_from, measure_from + plan.duration)
    tally = Tally()
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    step = plan.interval / plan.all_clients
    await asyncio.gather(
        *(
            run_client(plan, source, window, tally, due=start_at + (plan.first_client + k) * step)
            for k in range(plan.clients)
        )
    )
    tally.built_live = source.built_live
    return tally


def load_process(plan: LoadPlan, conn: Connection) -> None:
    """Child entry: pre-build, report ready, wait for the common start time, run, report."""
    with contextlib.suppress(ImportError):
        import uvloop  # a faster loop keeps the client's share of the CPU small

        uvloop.install()
    source = BodySource(plan)
    source.prebuild()
    conn.send("ready")
    start_at: float = conn.recv()
    conn.send(asdict(asyncio.run(drive(plan, source, start_at))))
    conn.close()


# ---------------------------------------------------------------------------------------------
# Feed readers (run in child processes of their own, beside the load generator)


@dataclass(frozen=True, slots=True)
class ReaderPlan:
    """What one feed-reader process does: one closed-loop reader per token."""

    index: int
    base_url: str
    tokens: tuple[str, ...]
    warmup: float
    duration: float
    rate: float = 0.0  # pages/s per reader at most; 0: back to back


@dataclass(slots=True)
class ReaderTally:
    """What one reader process saw inside the timed window."""

    latencies_ms: list[float] = field(default_factory=list)
    items: int = 0
    laps: int = 0  # times a reader reached the end of its feed and started again
    errors: dict[str, int] = field(default_factory=dict)
    # Refused before the window opened (in the warm-up): a reader told to come back after
    # the window (Retry-After) reads nothing in it, and shows no error of its own there.
    refused_before: int = 0
    longest_retry_after_s: float = 0.0

    def error(self, status: str) -> None:
        """Count one failed page."""
        self.errors[status] = self.errors.get(status, 0) + 1


async def fetch_page(
    http: aiohttp.ClientSession, token: str, cursor: str | None
) -> tuple[str, tuple[int, str, bool] | None, float]:
    """One feed page: "200" and (items, next cursor, has_more), or the status (or exception
    name) of a failure; and the seconds its Retry-After asks to wait (0 without one)."""
    try:
        return "200", await get_page(http, token, cursor), 0.0
    except Refused as exc:
        wait = float(exc.retry_after) if exc.retry_after.isdigit() else 0.0
        return str(exc.status), None, wait
    except TRANSPORT_ERRORS as exc:
        return type(exc).__name__, None, 0.0


async def read_feed(
    plan: ReaderPlan, token: str, window: tuple[float, float], tally: ReaderTally
) -> None:
    """One agency client on its own keep-alive connection: pages of 100 from the start of its
    feed, back to back (or no faster than `plan.rate`); at the end (`has_more` false) it starts
    again from the beginning, so every page releases stored events rather than waiting for new
    ones."""
    cursor: str | None = None
    async with session(plan.base_url, 1, timeout=30.0) as http:
        while time.monotonic() < window[1]:
            started = time.monotonic()
            status, page, retry_after = await fetch_page(http, token, cursor)
            finished = time.monotonic()
            counted = window[0] <= finished <= window[1]
            if page is None:
                if counted:
                    tally.error(status)
                elif finished < window[0]:
                    tally.refused_before += 1
                tally.longest_retry_after_s = max(tally.longest_retry_after_s, retry_after)
                # A refused page (503 feeds_busy) says when to ask again: readers honour it.
                pause = max(READER_ERROR_PAUSE, retry_after)
                await asyncio.sleep(min(pause, max(0.0, window[1] - time.monotonic())))
                continue
            items, next_cursor, more = page
            if counted:
                tally.latencies_ms.append((finished - started) * 1000)
                tally.items += items
                tally.laps += 0 if more else 1
            cursor = next_cursor if more else None
            if plan.rate > 0:
                await asyncio.sleep(max(0.0, started + 1 / plan.rate - time.monotonic()))


async def drive_readers(plan: ReaderPlan, start_at: float) -> ReaderTally:
    """Run this process's readers from `start_at` (through the warm-up); count the window."""
    measure_from = start_at + plan.warmup
    window = (measure_from, measure_from + plan.duration)
    tally = ReaderTally()
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    await asyncio.gather(*(read_feed(plan, token, window, tally) for token in plan.tokens))
    return tally


def reader_process(plan: ReaderPlan, conn: Connection) -> None:
    """Child entry: report ready, wait for the common start time, read, report."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    conn.send("ready")
    start_at: float = conn.recv()
    conn.send(asdict(asyncio.run(drive_readers(plan, start_at))))
    conn.close()


# ---------------------------------------------------------------------------------------------
# CPU accounting from /proc (who used the cores during the timed window)


@dataclass(frozen=True, slots=True)
class ProcSample:
    """CPU ticks per process and for the whole machine at one moment."""

    at: float
    procs: dict[int, tuple[str, int, int]]  # pid -> (comm, ppid, user+system ticks)
    busy: int
    total: int
    titles: dict[int, str] = field(default_factory=dict)  # PostgreSQL process titles
    # pid -> ns its main thread has waited on a run queue (schedstat): runnable, no core free.
    waited: dict[int, int] = field(default_factory=dict)


def other_database(title: str, database: str) -> bool:
    """Whether a PostgreSQL process title (`postgres: user db host(port) state`) names a
    session of another database (the server is shared: other runs' sessions are not ours)."""
    words = title.replace("\x00", " ").split()
    if len(words) > 1 and words[1].endswith(":"):  # a cluster name (`postgres: 15/main: ...`)
        del words[1]
    is_session = len(words) >= 4 and words[0] == "postgres:" and "(" in words[3]
    return bool(database) and is_session and words[2] != database


def backend_cpu_ns(conn: asyncpg.Connection) -> int:
    """The CPU time, in ns, the connection's PostgreSQL backend has used (`schedstat`)."""
    with Path(f"/proc/{conn.get_server_pid()}/schedstat").open() as stat:
        return int(stat.read().split()[0])


def sample_cpu() -> ProcSample:
    """Read /proc once."""
    procs: dict[int, tuple[str, int, int]] = {}
    titles: dict[int, str] = {}
    waited: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        rest = raw[raw.rindex(")") + 2 :].split()
        procs[int(entry.name)] = (comm, int(rest[1]), int(rest[11]) + int(rest[12]))
        with contextlib.suppress(OSError, IndexError, ValueError):
            waited[int(entry.name)] = int((entry / "schedstat").read_text().split()[1])
        if comm.startswith("postgres"):
            with contextlib.suppress(OSError):
                titles[int(entry.name)] = (entry / "cmdline").read_bytes().decode(errors="replace")
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return ProcSample(
        at=time.monotonic(), procs=procs, busy=total - idle, total=total, titles=titles,
        waited=waited,
    )  # fmt: skip


def descendants(sample: ProcSample, root: int) -> set[int]:
    """`root` and every process below it."""
    found = {root}
    grew = True
    while grew:
        more = {pid for pid, (_, ppid, _) in sample.procs.items() if ppid in found} - found
        found |= more
        grew = bool(more)
    return found


def cpu_split(
    before: ProcSample,
    after: ProcSample,
    *,
    api_pid: int,
    load_pids: set[int],
    database: str = "",
    reader_pids: set[int] | None = None,
    roots: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Percent of one core used per group (api, postgres, redis, load generator, other);
    with `database`, sessions of other databases on the shared server count as other; with
    `reader_pids`, the feed readers are a group of their own; each of `roots` (a name and a
    process) makes a group of that process and all below it (the readers' API, a private
    primary, which then is the postgres group, and its replica)."""
    seconds = after.at - before.at
    used: dict[int, float] = {}
    for pid, (_, _, ticks) in after.procs.items():
        start = before.procs.get(pid, ("", 0, 0))[2]
        used[pid] = (ticks - start) / CLK_TCK / seconds * 100
    api = descendants(after, api_pid)
    load = set().union(*(descendants(after, p) for p in load_pids)) if load_pids else set()
    groups = {
        "api": api,
        "postgres": {
            p
            for p, v in after.procs.items()
            if v[0].startswith("postgres") and not other_database(after.titles.get(p, ""), database)
        },
        "redis": {p for p, v in after.procs.items() if v[0].startswith("redis-server")},
        "load_generator": load,
    }
    if reader_pids is not None:
        groups["feed_readers"] = set().union(*(descendants(after, p) for p in reader_pids))
    for name, root in (roots or {}).items():
        groups[name] = descendants(after, root)
        if name != "postgres":
            groups["postgres"] -= groups[name]
    if "reader_api" in groups:  # the sessions the readers' API holds on the primary
        groups["postgres_for_readers"] = (
            sessions_of(after, groups["reader_api"]) & groups["postgres"]
        )
        groups["postgres"] -= groups["postgres_for_readers"]
    split = {name: round(sum(used.get(p, 0.0) for p in pids), 1) for name, pids in groups.items()}
    busy = (after.busy - before.busy) / CLK_TCK / seconds * 100
    split["other"] = round(max(0.0, busy - sum(split.values())), 1)
    cores = os.cpu_count() or 1
    split["idle"] = round(max(0.0, cores * 100 - busy), 1)
    workers = sorted(
        (round(used.get(p, 0.0), 1) for p in api if used.get(p, 0.0) > 1), reverse=True
    )
    waited = {
        name: round(sum(_waited_ns(before, after, p) for p in pids) / 1e6 / seconds, 1)
        for name, pids in groups.items()
    }
    return {
        "percent_of_one_core": split, "api_processes_busy": workers, "cores": cores,
        "run_queue_ms_per_s": waited,
    }  # fmt: skip


def sessions_of(sample: ProcSample, clients: set[int]) -> set[int]:
    """The PostgreSQL backends whose TCP peer is a socket of one of `clients`: a backend's
    title names its client's port (`postgres: user db 127.0.0.1(54321) idle`)."""
    ports = client_ports(clients)
    found = set()
    for pid, title in sample.titles.items():
        words = title.replace("\x00", " ").split()
        peer = next((w for w in words if w.startswith("127.0.0.1(") and w.endswith(")")), "")
        if peer and int(peer[10:-1]) in ports:
            found.add(pid)
    return found


def client_ports(pids: set[int]) -> set[int]:
    """The local TCP ports of the sockets `pids` hold open (/proc/<pid>/fd, /proc/net/tcp)."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = str(fd.readlink())
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _waited_ns(before: ProcSample, after: ProcSample, pid: int) -> int:
    return after.waited.get(pid, 0) - before.waited.get(pid, 0)


# ---------------------------------------------------------------------------------------------
# Scratch environment: database, Redis prefix, edge node, API subprocess


@dataclass(slots=True)
class Scratch:
    """The resources this run owns; `close()` removes all of them."""

    settings: Settings
    tag: str = field(default_factory=lambda: secrets.token_hex(4))
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="hub-bench-")))
    api: subprocess.Popen[bytes] | None = None
    api_log: Path | None = None
    tokens_file: Path | None = None  # agency bearer tokens, made only for feed readers
    # --replica: a private primary and its streaming replica stand in for the server of
    # HUB_DATABASE_URL; feed pages read the replica while it is fresh (ADR 0016).
    pair: PrivatePair | None = None
    # --reader-api: the readers' API processes, started under `nice` (one more process group).
    reader_api: subprocess.Popen[bytes] | None = None
    reader_api_log: Path | None = None
    ingest_cpus: set[int] | None = None  # --split-cores: where the ingest API runs

    @property
    def database_url(self) -> str:
        """The scratch database on the configured server (or the private primary)."""
        if self.pair is not None:
            return self.pair.url(f"hub_bench_{self.tag}")
        return with_database(self.settings.database_url, f"hub_bench_{self.tag}")

    @property
    def redis_prefix(self) -> str:
        """Every Redis key of this run starts with this."""
        return f"bench:{self.tag}:"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of the hub subprocesses."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        env.update(
            HUB_DATABASE_URL=self.database_url,
            HUB_REDIS_URL=self.settings.redis_url,
            HUB_REDIS_PREFIX=self.redis_prefix,
            HUB_LOG_LEVEL="warning",
            # A benchmark measures capacity; the per-client rate limit (600 requests a minute)
            # would turn most of its requests into 429s.
            HUB_RATELIMIT_ENABLED="false",
            HUB_MEDIA_DIR=str(self.folder / "media"),
        )
        if self.tokens_file is not None:
            env["HUB_API_TOKENS_FILE"] = str(self.tokens_file)
        if self.pair is not None:
            env["HUB_DATABASE_REPLICA_URL"] = self.pair.url(f"hub_bench_{self.tag}", replica=True)
        # The feed page budget (ADR 0026) and connection recycling (ADR 0031) may be tried
        # from the caller's environment.
        env.update({k: v for k, v in os.environ.items() if k.startswith(TRIED_SETTINGS)})
        env.update(extra)  # the run's own settings win (the shut-out reference's budget)
        return env

    def roots(self) -> dict[str, int]:
        """The process groups of their own for `cpu_split`: the readers' API, and the private
        primary (the postgres group) and replica."""
        roots = {}
        if self.reader_api is not None:
            roots["reader_api"] = self.reader_api.pid
        for group, server in (("postgres", "primary"), ("replica", "replica")):
            pid = self.pair.postmaster_pid(server) if self.pair else None
            if pid is not None:
                roots[group] = pid
        return roots

    def hub(self, *args: str) -> str:
        """Run one `hub` command; its stdout, or an error with its stderr."""
        done = subprocess.run(  # noqa: S603 - our own interpreter and fixed arguments
            [sys.executable, "-m", "hub.cli.main", *args],
            env=self.env(), capture_output=True, check=False, timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"hub {' '.join(args)} failed:\n{done.stderr.decode()}")
        return done.stdout.decode()

    def add_node(self, *, cameras: int = CAMERAS) -> tuple[str, bytes]:
        """Register an edge node owning its cameras; its key id and private key PEM."""
        key_file = self.folder / "edge-key.pem"
        name = f"bench-{self.tag}"
        out = self.hub("nodes", "add", name, "--generate-key", str(key_file), "--json")
        node = msgspec.json.decode(out.strip().splitlines()[-1])
        for number in range(1, cameras + 1):  # ingest rejects cameras the node does not own
            self.hub("nodes", "cameras", "add", name, f"site-1:cam-{number:02d}",
                     "--jurisdiction", "central")  # fmt: skip
        return str(node["id"]), key_file.read_bytes()

    def add_feed_readers(self, readers: int) -> list[str]:
        """Register the reader agencies and make one bearer token per reader (spread over
        them), before the API starts and reads its tokens file."""
        self.tokens_file = self.folder / "api-tokens.toml"
        asyncio.run(self._register_agencies())
        names = [READER_AGENCIES[i % len(READER_AGENCIES)] for i in range(readers)]
        return [agency_token(self.tokens_file, name) for name in names]

    async def _register_agencies(self) -> None:
        conn = await asyncpg.connect(self.database_url)
        try:
            await register_agencies(conn, READER_AGENCIES)
            await conn.execute(PULL_ONLY_SQL)
        finally:
            await conn.close()

    def start_api(self, *, port: int, workers: int, **extra: str) -> None:
        """Start `hub api` in its own process group, logging to a file."""
        self.api_log = self.folder / "api.log"
        self.api = self._spawn_api(
            self.api_log, port=port, workers=workers, settings=extra, cpus=self.ingest_cpus
        )

    def start_reader_api(
        self, *, port: int, workers: int, nice: int, cpus: set[int] | None = None
    ) -> None:
        """Start the readers' `hub api` at `nice` (on `cpus` only), its page budget open."""
        self.reader_api_log = self.folder / "reader-api.log"
        self.reader_api = self._spawn_api(
            self.reader_api_log,
            port=port,
            workers=workers,
            nice=nice,
            settings=READER_API_ENV,
            cpus=cpus,
        )
        self.wait_ready(f"http://127.0.0.1:{port}", workers=workers, api=self.reader_api)

    def _spawn_api(
        self,
        log_file: Path,
        *,
        port: int,
        workers: int,
        settings: dict[str, str],
        nice: int = 0,
        cpus: set[int] | None = None,
    ) -> subprocess.Popen[bytes]:
        base = f"http://127.0.0.1:{port}"
        with log_file.open("wb") as sink:
            api = subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
                [sys.executable, "-m", "hub.cli.main", "api", "--host", "127.0.0.1",
                 "--port", str(port), "--workers", str(workers)],
                env=self.env(HUB_PUBLIC_BASE_URL=base, **settings), stdout=sink,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        if nice:  # before it spawns its workers, which inherit it
            lower_priority(api.pid, nice)
        if cpus:  # likewise
            os.sched_setaffinity(api.pid, cpus)
        return api

    def wait_ready(
        self,
        base_url: str,
        *,
        workers: int,
        timeout: float = 60.0,
        api: subprocess.Popen[bytes] | None = None,
    ) -> None:
        """Wait for /readyz and, with several workers, for every worker process to exist (of
        the scratch API, or of `api`)."""
        api = api or self.api
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if api is None or api.poll() is not None:
                raise RuntimeError(f"hub api exited early:\n{self.api_log_tail(api)}")
            if self._answers_ready(base_url) and _worker_count(api) >= workers:
                return
            time.sleep(0.2)
        raise RuntimeError(f"hub api not ready after {timeout:.0f} s:\n{self.api_log_tail(api)}")

    def _answers_ready(self, base_url: str) -> bool:
        try:
            return httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def api_log_tail(self, api: subprocess.Popen[bytes] | None = None) -> str:
        """The last lines the API (or the readers' API) wrote (for error messages)."""
        log_file = self.reader_api_log if api is not None and api is self.reader_api else None
        log_file = log_file or self.api_log
        if log_file is None or not log_file.exists():
            return "(no log)"
        return "\n".join(log_file.read_text(errors="replace").splitlines()[-30:])

    def stop_api(self) -> None:
        """SIGTERM the API (graceful), SIGKILL its process group if it lingers."""
        _stop(self.api)

    def stop_reader_api(self) -> None:
        """Stop the readers' API the same way."""
        _stop(self.reader_api)

    def close(self) -> None:
        """Stop the API, drop the database, delete the Redis keys and the temp folder."""
        steps = (
            ("stop the API", self.stop_api),
            ("stop the readers' API", self.stop_reader_api),
            ("drop the database", lambda: asyncio.run(drop_database(self.database_url))),
            ("stop the private PostgreSQL pair", self.pair.stop if self.pair else lambda: None),
            ("delete Redis keys", lambda: asyncio.run(self._delete_redis_keys())),
            ("remove the temp folder", lambda: shutil.rmtree(self.folder, ignore_errors=True)),
        )
        for what, step in steps:
            try:
                step()
            except Exception as exc:  # clean up the rest regardless
                log(f"could not {what}: {exc!r}")

    async def _delete_redis_keys(self) -> None:
        client: Redis = Redis.from_url(self.settings.redis_url)
        try:
            keys = [
                key async for key in client.scan_iter(match=f"{self.redis_prefix}*", count=1000)
            ]
            for start in range(0, len(keys), 1000):
                await client.delete(*keys[start : start + 1000])
        finally:
            await client.aclose()


def _worker_count(api: subprocess.Popen[bytes] | None) -> int:
    if api is None:
        return 0
    workers = 0  # uvicorn's worker processes are spawned children of the API process
    for pid, (_, ppid, _) in sample_cpu().procs.items():
        with contextlib.suppress(OSError):
            if ppid == api.pid and b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                workers += 1
    return max(1, workers)


def _stop(api: subprocess.Popen[bytes] | None) -> None:
    if api is None or api.poll() is not None:
        return
    api.send_signal(signal.SIGTERM)
    try:
        api.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(api.pid, signal.SIGKILL)  # the group we created for it
        api.wait(timeout=5)


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at database `name`."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


async def drop_database(url: str) -> None:
    """Drop the scratch database of `url`, disconnecting anyone still on it."""
    name = urlsplit(url).path.lstrip("/")
    if not name.startswith("hub_bench_") or not name.replace("_", "").isalnum():
        raise ValueError(f"refusing to drop {name!r}: not a scratch database of this bench")
    conn = await asyncpg.connect(with_database(url, "postgres"), timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


# ---------------------------------------------------------------------------------------------
# Load phase


@dataclass(frozen=True, slots=True)
class LoadResult:
    """The merged tallies and the CPU split of the timed window (and the feed readers')."""

    tally: Tally
    cpu: dict[str, Any]
    feed: ReaderTally | None = None


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def split_clients(clients: int, procs: int) -> list[int]:
    """Spread `clients` over `procs` processes as evenly as possible."""
    return [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]


def plan_load(
    args: argparse.Namespace, *, base_url: str, key_id: str, key_pem: bytes
) -> list[LoadPlan]:
    """One plan per load process, with enough pre-signed bodies for `--pool-rate` events/s."""
    procs = max(1, min(args.procs, args.clients))
    seconds = args.warmup + args.duration
    per_proc = math.ceil(args.pool_rate * seconds / args.batch / procs)
    per_proc = min(per_proc, PRESIGN_MAX_EVENTS_PER_PROC // args.batch)
    presign = seconds <= PRESIGN_MAX_SECONDS
    # Open loop: the offered events/s shared by every client, batch after batch.
    interval = args.clients * args.batch / args.ingest_rate if args.ingest_rate else 0.0
    counts = split_clients(args.clients, procs)
    return [
        LoadPlan(
            index=i,
            clients=n,
            base_url=base_url,
            key_id=key_id,
            key_pem=key_pem,
            batch=args.batch,
            warmup=args.warmup,
            duration=args.duration,
            presigned=per_proc + n if presign else 0,
            cameras=args.cameras,
            interval=interval,
            first_client=sum(counts[:i]),
            all_clients=args.clients,
        )
        for i, n in enumerate(counts)
    ]


async def vacuum(database_url: str) -> None:
    """VACUUM ANALYZE the scratch database before a phase, so every phase starts with no dead
    rows and fresh statistics. A phase leaves `feed_pending` with every one of its events as
    a dead row (queued, then sequenced: ~100,000) within seconds; unvacuumed, the next phase's
    sequencer runs read them all (its pick is a sequential scan; sampled in pg_stat_activity:
    busy in most samples), and its statements were planned on statistics of a nearly empty
    table. Migration 0021 has autovacuum take `feed_pending` at every visit it finds 5,000 dead
    rows, but a visit comes at most once per `autovacuum_naptime` (a minute by default, a
    server setting; phases last seconds), and a server may run with autovacuum off (the shared
    development server does): so the bench vacuums itself."""
    log("VACUUM ANALYZE before the phase")
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def dead_rows(database_url: str) -> dict[str, int]:
    """The tables holding most dead rows now (what the phase just run left)."""
    conn = await asyncpg.connect(database_url)
    try:
        await asyncio.sleep(1.1)  # sessions publish their table counters at most once a second
        rows = await conn.fetch(DEAD_ROWS_SQL)
    finally:
        await conn.close()
    return {row["relname"]: row["n_dead_tup"] for row in rows}


def plan_readers(args: argparse.Namespace, *, base_url: str, tokens: list[str]) -> list[ReaderPlan]:
    """One plan per reader process, the readers (one token each) spread evenly."""
    procs = max(1, min(args.reader_procs, len(tokens)))
    plans, start = [], 0
    for i, n in enumerate(split_clients(len(tokens), procs)):
        mine = tuple(tokens[start : start + n])
        plans.append(
            ReaderPlan(
                i, base_url, mine, warmup=args.warmup, duration=args.duration, rate=args.reader_rate
            )
        )
        start += n
    return plans


def merge_readers(parts: list[dict[str, Any]]) -> ReaderTally:
    """Add up the tallies of every reader process."""
    total = ReaderTally()
    for part in parts:
        total.latencies_ms += part["latencies_ms"]
        total.items += part["items"]
        total.laps += part["laps"]
        total.errors = dict(Counter(total.errors) + Counter(part["errors"]))
        total.refused_before += part["refused_before"]
        total.longest_retry_after_s = max(
            total.longest_retry_after_s, part["longest_retry_after_s"]
        )
    return total


def merge(parts: list[dict[str, Any]]) -> Tally:
    """Add up the tallies of every load process."""
    total = Tally()
    for part in parts:
        total.latencies_ms += part["latencies_ms"]
        total.requests_ok += part["requests_ok"]
        total.events_accepted += part["events_accepted"]
        total.events_not_accepted += part["events_not_accepted"]
        total.errors = dict(Counter(total.errors) + Counter(part["errors"]))
        total.built_live += part["built_live"]
    return total


def run_load(
    plans: list[LoadPlan],
    *,
    api_pid: int,
    database: str = "",
    readers: list[ReaderPlan] | None = None,
    roots: dict[str, int] | None = None,
) -> LoadResult:
    """Start the load processes (and the feed-reader processes), release them together,
    sample the CPU around the window."""
    ctx = multiprocessing.get_context("spawn")
    pipes, procs, reader_pipes, reader_procs = [], [], [], []
    try:
        for plan in plans:
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=load_process, args=(plan, theirs), daemon=True)
            proc.start()
            pipes.append(mine)
            procs.append(proc)
        for reader in readers or []:
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=reader_process, args=(reader, theirs), daemon=True)
            proc.start()
            reader_pipes.append(mine)
            reader_procs.append(proc)
        log(f"pre-building {sum(p.presigned for p in plans)} signed batches")
        for pipe in pipes + reader_pipes:
            pipe.recv()
        start_at = time.monotonic() + 0.3
        for pipe in pipes + reader_pipes:
            pipe.send(start_at)
        cpu = sample_window(
            plans[0],
            start_at,
            api_pid=api_pid,
            load_pids={p.pid for p in procs if p.pid},
            database=database,
            reader_pids={p.pid for p in reader_procs if p.pid} if readers else None,
            roots=roots,
        )
        parts = [pipe.recv() for pipe in pipes]
        reader_parts = [pipe.recv() for pipe in reader_pipes]
    finally:
        for proc in procs + reader_procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
    feed = merge_readers(reader_parts) if readers else None
    return LoadResult(tally=merge(parts), cpu=cpu, feed=feed)


def sample_window(
    plan: LoadPlan,
    start_at: float,
    *,
    api_pid: int,
    load_pids: set[int],
    database: str = "",
    reader_pids: set[int] | None = None,
    roots: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Sleep through the warm-up, sample /proc at both ends of the timed window."""
    log(f"warming up {plan.warmup:g} s, then measuring {plan.duration:g} s")
    time.sleep(max(0.0, start_at + plan.warmup - time.monotonic()))
    before = sample_cpu()
    time.sleep(max(0.0, start_at + plan.warmup + plan.duration - time.monotonic()))
    after = sample_cpu()
    return cpu_split(
        before, after, api_pid=api_pid, load_pids=load_pids, database=database,
        reader_pids=reader_pids, roots=roots,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Raw COPY phase (the machine's limit for the same rows)


def raw_rows(node_id: uuid.UUID, count: int, *, batch: int) -> list[tuple[Any, ...]]:
    """Rows exactly as the hub would insert them (same canonical payload and hash)."""
    maker = EventMaker(seed=secrets.randbits(32))
    rows: list[tuple[Any, ...]] = []
    while len(rows) < count:
        body = maker.body(min(batch, count - len(rows)))
        for prepared in map(prepare, msgspec.json.decode(body, type=EventBatch).events):
            e = prepared.event
            rows.append((
                node_id, e.event_id, e.captured_at, e.camera_id,
                sorted({d.label for d in e.detections}), max(d.confidence for d in e.detections),
                [m.sha256 for m in e.media], "accepted", prepared.content_sha256,
                prepared.payload.decode(),
            ))  # fmt: skip
    return rows


@dataclass(frozen=True, slots=True)
class CopyTiming:
    """One timed COPY: its rate, and the CPU each chunk cost the server's backend and this
    process (asyncpg encoding the records), in ms."""

    rows_per_s: float
    postgres_ms: float
    client_ms: float


async def time_copies(
    conn: asyncpg.Connection, rows: list[tuple[Any, ...]], chunk: int
) -> CopyTiming:
    """Copy `rows` in chunks of `chunk`, one transaction (commit) each: rows per second and
    CPU per chunk."""
    backend, client, started = backend_cpu_ns(conn), time.process_time(), time.monotonic()
    for start in range(0, len(rows), chunk):
        records = rows[start : start + chunk]
        await conn.copy_records_to_table(RAW_TABLE, records=records, columns=RAW_COLUMNS)
    elapsed = time.monotonic() - started
    chunks = math.ceil(len(rows) / chunk)
    return CopyTiming(
        rows_per_s=len(rows) / elapsed,
        postgres_ms=(backend_cpu_ns(conn) - backend) / 1e6 / chunks,
        client_ms=(time.process_time() - client) * 1e3 / chunks,
    )


# Batched COPY is timed this many times on each side of the load (before the API starts and
# after it stops) and the median of all of them is the reference: one timing moved between
# 19.8k and 31.5k rows/s over a session on one machine, more than ingest's gap to its aim, and
# autovacuum of the tables the load just filled, or a checkpoint its WAL set off, can land in
# any one of them. With timings on both sides, a drift of the machine over the run moves the
# reference as it moves the load.
RAW_ROUNDS = 3


async def measure_raw(
    database_url: str, *, rows: list[tuple[Any, ...]], batch: int, whole: bool
) -> tuple[list[CopyTiming], CopyTiming | None]:
    """COPY into a plain copy of `detection_event` (same columns, indexes and defaults):
    `RAW_ROUNDS` timings in batches of `batch`, and with `whole` one copy of all the rows."""
    conn = await asyncpg.connect(database_url)
    try:
        # No CHECKPOINT between the two: the server may be shared, and it would stall others.
        await conn.execute(f"CREATE TABLE {RAW_TABLE} (LIKE detection_event INCLUDING ALL)")
        batched = []
        for _ in range(RAW_ROUNDS):
            batched.append(await time_copies(conn, rows, batch))
            await conn.execute(f"TRUNCATE {RAW_TABLE}")
        one = await time_copies(conn, rows, len(rows)) if whole else None
        await conn.execute(f"DROP TABLE {RAW_TABLE}")
    finally:
        await conn.close()
    return batched, one


def raw_figures(
    before: list[CopyTiming], after: list[CopyTiming], whole: CopyTiming, *, rows: int
) -> dict[str, Any]:
    """The reference figures: batched timings from both sides of the load, one big copy."""
    batched = before + after
    return {
        "rows": rows,
        "batched_rows_per_s": round(statistics.median(t.rows_per_s for t in batched)),
        "batched_rounds_before": [round(t.rows_per_s) for t in before],
        "batched_rounds_after": [round(t.rows_per_s) for t in after],
        "batched_cpu_ms_per_batch": {
            "postgres": round(statistics.median(t.postgres_ms for t in batched), 2),
            "client": round(statistics.median(t.client_ms for t in batched), 2),
        },
        "one_copy_rows_per_s": round(whole.rows_per_s),
    }


# ---------------------------------------------------------------------------------------------
# Report


def _copy_cpu(raw: dict[str, Any]) -> float:
    """A batched COPY's CPU per batch, PostgreSQL's and the client's."""
    cpu: dict[str, float] = raw["batched_cpu_ms_per_batch"]
    return round(cpu["postgres"] + cpu["client"], 2)


def _rounds(rates: list[int]) -> str:
    return ", ".join(f"{r:,}" for r in rates)


def _hub_cpu(per: dict[str, float]) -> str:
    """Ingest's server CPU per batch (API, PostgreSQL and Redis), the figure to set beside
    COPY's: the load generator stands for the edge nodes, whose CPU is not the hub's."""
    if not per:
        return "none measured"
    return f"{per['api'] + per['postgres'] + per['redis']:.2f} ms"


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def waited_per_batch(cpu: dict[str, Any], *, requests: float) -> dict[str, float]:
    """Milliseconds the API's and PostgreSQL's processes stood runnable with no core free,
    per answered batch: what the scheduler, not the work, added to the latency."""
    if requests <= 0:
        return {}
    waited = cpu["run_queue_ms_per_s"]
    return {name: round(waited[name] / requests, 2) for name in ("api", "postgres")}


def _run_queue(waited: dict[str, float]) -> str:
    return f"api {waited.get('api', 0)} ms, postgres {waited.get('postgres', 0)} ms"


def cpu_per_batch(cpu: dict[str, Any], *, requests: float) -> dict[str, float]:
    """CPU milliseconds per answered batch, by group: steadier than rates on a busy machine."""
    if requests <= 0:
        return {}
    split = cpu["percent_of_one_core"]
    groups = ("api", "postgres", "redis", "load_generator")
    return {name: round(split[name] * 10 / requests, 2) for name in groups}


def build_report(
    args: argparse.Namespace, load: LoadResult, raw: dict[str, Any], *, procs: int
) -> dict[str, Any]:
    """Every figure of the run as one JSON-ready dict."""
    tally = load.tally
    latencies = sorted(tally.latencies_ms)
    events_per_s = tally.events_accepted / args.duration
    p99 = percentile(latencies, 0.99)
    quantiles = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
    return {
        "config": {
            "clients": args.clients, "load_processes": procs, "api_workers": args.workers,
            "batch": args.batch, "cameras": args.cameras, "duration_s": args.duration,
            "warmup_s": args.warmup, "offered_events_per_s": args.ingest_rate or None,
            "reader_api": (
                {"workers": args.reader_workers, "nice": args.reader_nice}
                if args.reader_api else None
            ),
            "replica": {"nice": args.replica_nice} if args.replica else None,
        },
        "events_per_s": round(events_per_s),
        "requests_per_s": round(len(latencies) / args.duration, 1),
        "events_accepted": tally.events_accepted,
        "events_not_accepted": tally.events_not_accepted,
        "latency_ms": {name: round(percentile(latencies, q), 1) for name, q in quantiles},
        "errors": dict(sorted(tally.errors.items())),
        "bodies_built_during_run": tally.built_live,
        "server_workers": args.workers,
        "cpu": load.cpu,
        "cpu_ms_per_batch": cpu_per_batch(load.cpu, requests=len(latencies) / args.duration),
        "run_queue_ms_per_batch": waited_per_batch(
            load.cpu, requests=len(latencies) / args.duration
        ),
        "raw_copy": raw,
        "fraction_of_raw": {
            "batched": round(events_per_s / raw["batched_rows_per_s"], 3),
            "one_copy": round(events_per_s / raw["one_copy_rows_per_s"], 3),
            "aim": AIM_FRACTION_OF_RAW,
        },
        "target": {
            "events_per_s": TARGET_EVENTS_PER_S, "p99_ms": TARGET_P99_MS,
            "met": events_per_s >= TARGET_EVENTS_PER_S and bool(latencies) and p99 < TARGET_P99_MS,
        },
    }  # fmt: skip


def feed_report(args: argparse.Namespace, feed: ReaderTally, cpu: dict[str, Any]) -> dict[str, Any]:
    """The feed readers' figures over the timed window."""
    latencies = sorted(feed.latencies_ms)
    return {
        "readers": args.feed_readers,
        "processes": max(1, min(args.reader_procs, args.feed_readers)),
        "agencies": list(READER_AGENCIES[: args.feed_readers]),
        "pages_per_s_per_reader_at_most": args.reader_rate or None,
        "pages_per_s": round(len(latencies) / args.duration, 1),
        "items_per_s": round(feed.items / args.duration),
        "page_ms": {
            "p50": round(percentile(latencies, 0.5), 1),
            "p99": round(percentile(latencies, 0.99), 1),
        },
        "laps": feed.laps,
        "errors": dict(sorted(feed.errors.items())),
        "refused_before_window": feed.refused_before,
        "longest_retry_after_s": feed.longest_retry_after_s,
        "reader_cpu_percent_of_one_core": cpu["percent_of_one_core"]["feed_readers"],
    }


@dataclass(frozen=True, slots=True)
class Phase:
    """One timed phase of `--compare-readers`."""

    name: str
    with_readers: bool
    load: LoadResult
    dead_rows: dict[str, int]  # what it left, per table, before the next phase's VACUUM


def run_phases(
    scratch: Scratch,
    plans: list[LoadPlan],
    readers: list[ReaderPlan],
    *,
    api: tuple[int, int],
    shut_out: bool,
    rounds: int = 1,
    control: bool = False,
) -> list[Phase]:
    """Time ingest alone, beside the readers and alone again (then, with `shut_out`, beside
    readers refused every page), each after a VACUUM ANALYZE. `api` is (port, workers). With
    `control` the "beside" phases run without readers: how far the ratio strays on its own."""
    database, url = f"hub_bench_{scratch.tag}", scratch.database_url
    compared = compare_phases(rounds)
    todo = [*compared, *([(SHUT_OUT_PHASE, True)] if shut_out else [])]
    phases = []
    for number, (name, with_readers) in enumerate(todo, 1):
        if number > 1:
            asyncio.run(vacuum(url))
        if number > len(compared):
            restart_api(scratch, api, **SHUT_OUT_ENV)
        log(f"phase {number} of {len(todo)}: ingest {name}")
        assert scratch.api is not None
        load = run_load(
            plans, api_pid=scratch.api.pid, database=database,
            readers=readers if with_readers and not control else None, roots=scratch.roots(),
        )  # fmt: skip
        phases.append(Phase(name, with_readers, load, asyncio.run(dead_rows(url))))
    return phases


def restart_api(scratch: Scratch, api: tuple[int, int], **extra: str) -> None:
    """Stop the scratch API and start it again on the same port with `extra` settings."""
    port, workers = api
    log(f"restarting the API with {extra}")
    scratch.stop_api()
    scratch.start_api(port=port, workers=workers, **extra)
    scratch.wait_ready(f"http://127.0.0.1:{port}", workers=workers)


def phase_summary(args: argparse.Namespace, load: LoadResult) -> dict[str, Any]:
    """The ingest figures of one phase that a with/without comparison reads."""
    latencies = sorted(load.tally.latencies_ms)
    return {
        "events_per_s": round(load.tally.events_accepted / args.duration),
        "p50_ms": round(percentile(latencies, 0.5), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "errors": dict(sorted(load.tally.errors.items())),
        "cpu_ms_per_batch": cpu_per_batch(load.cpu, requests=len(latencies) / args.duration),
        "run_queue_ms_per_batch": waited_per_batch(
            load.cpu, requests=len(latencies) / args.duration
        ),
        "cpu_percent_of_one_core": load.cpu["percent_of_one_core"],
        # What the readers got in this phase (None without readers).
        "reader_pages_per_s": (
            None if load.feed is None else round(len(load.feed.latencies_ms) / args.duration, 1)
        ),
        "reader_refusals": None if load.feed is None else sum(load.feed.errors.values()),
    }


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator to two places (None without a denominator)."""
    return round(numerator / denominator, 2) if denominator else None


def compare_figures(args: argparse.Namespace, phases: list[Phase]) -> dict[str, Any]:
    """Every phase's figures, the median beside p99 over the median alone p99 (the goal
    figure; with one round, the beside phase over the mean of the two alone ones) and over
    each alone phase, and whether the machine stayed comparable."""
    summaries = [
        {"name": p.name, "with_readers": p.with_readers, **phase_summary(args, p.load),
         "dead_rows_after": p.dead_rows}
        for p in phases
    ]  # fmt: skip
    compared = [s for s in summaries if s["name"] != SHUT_OUT_PHASE]
    beside = [s["p99_ms"] for s in compared if s["with_readers"]]
    alone = [s["p99_ms"] for s in compared if not s["with_readers"]]
    shut_out = [s for s in summaries if s["name"] == SHUT_OUT_PHASE]
    alone_p99, beside_p99 = statistics.median(alone), statistics.median(beside)
    other = [s["cpu_percent_of_one_core"]["other"] for s in compared]
    drift = round(max(other) - min(other), 1)
    return {
        "phases": summaries,
        "rounds": len(beside),
        "alone_p99_median_ms": round(alone_p99, 1),
        "beside_p99_median_ms": round(beside_p99, 1),
        "p99_ratio": ratio(beside_p99, alone_p99),
        "p99_ratio_to_each_alone": [ratio(beside_p99, p99) for p99 in alone],
        "p99_ratio_to_neighbours": neighbour_ratios(compared),
        "other_cpu_drift_points": drift,
        "judged": drift <= OTHER_CPU_DRIFT_POINTS,
        "shut_out_p99_ratio": ratio(shut_out[0]["p99_ms"], alone_p99) if shut_out else None,
    }


def neighbour_ratios(compared: list[dict[str, Any]]) -> list[float | None]:
    """Each beside phase's p99 over the mean of the alone phases just before and after it
    (the phases alternate, alone first and last): a drift over the run (the tables grow every
    phase) then cancels phase by phase instead of between the medians of the two sides."""
    return [
        ratio(phase["p99_ms"], (compared[i - 1]["p99_ms"] + compared[i + 1]["p99_ms"]) / 2)
        for i, phase in enumerate(compared)
        if phase["with_readers"] and 0 < i < len(compared) - 1
    ]


def add_reader_figures(
    report: dict[str, Any],
    args: argparse.Namespace,
    beside: LoadResult,
    phases: list[Phase] | None,
) -> None:
    """The readers' figures, ingest's p99 beside them and, with `--compare-readers`, every
    phase's figures and the ratio (beside / mean of alone: 1.0 is unchanged). A `--control`
    run had no readers in its "beside" phases, so it has no reader figures."""
    if beside.feed is not None:
        report["feed_readers"] = feed_report(args, beside.feed, beside.cpu)
    report["ingest_p99_with_readers_ms"] = phase_summary(args, beside)["p99_ms"]
    if phases is not None:
        report["compare_readers"] = compare_figures(args, phases)


def render_readers(report: dict[str, Any]) -> Iterator[str]:
    """The lines of the feed readers and of the with/without comparison."""
    feed = report.get("feed_readers")
    if feed is not None:
        yield render_feed(feed)
    compare = report.get("compare_readers")
    if compare is None:
        yield f"  ingest p99      {report['ingest_p99_with_readers_ms']} ms with the feed readers"
        return
    for number, phase in enumerate(compare["phases"], 1):
        yield from render_phase(number, phase)
    each = ", ".join(str(r) for r in compare["p99_ratio_to_each_alone"])
    found = compare["p99_ratio"]
    judged = (
        ""
        if compare["judged"]
        else f", not judged: other processes' cpu moved {compare['other_cpu_drift_points']} "
        "points of a core between the phases"
    )
    rounds = compare["rounds"]
    beside = "the beside phase" if rounds == 1 else f"the median of {rounds} beside phases"
    readers = f"{feed['readers']} feed readers" if feed else "no readers (--control)"
    alone = "the mean of the alone phases" if rounds == 1 else "the median of the alone phases"
    yield (
        f"  ingest p99      {compare['beside_p99_median_ms']} ms beside {readers} "
        f"({beside}), {compare['alone_p99_median_ms']} ms {alone}: ratio "
        f"{found if found is not None else 'n/a'}{judged} (to each alone phase: {each}; "
        "beside / alone, 1.0 = unchanged)"
    )
    neighbours = [r for r in compare["p99_ratio_to_neighbours"] if r is not None]
    if len(neighbours) > 1:
        listed = ", ".join(str(r) for r in neighbours)
        yield (
            f"  by neighbours   each beside phase over the mean of the alone phases on either "
            f"side: {listed}; median {statistics.median(neighbours):.2f}"
        )
    if compare["shut_out_p99_ratio"] is not None:
        yield (
            f"  shut out        ingest p99 beside readers refused every page, over {alone}: "
            f"{compare['shut_out_p99_ratio']} (a last phase on a restarted "
            "API; its drift is not balanced)"
        )


def render_feed(feed: dict[str, Any]) -> str:
    """The line of the feed readers' figures."""
    errors = ", ".join(f"{k}: {v}" for k, v in feed["errors"].items()) or "none"
    pace = feed["pages_per_s_per_reader_at_most"]
    paced = f", each at most {pace:g} pages/s" if pace else ", back to back"
    return (
        f"  feed readers    {feed['readers']} REST readers ({', '.join(feed['agencies'])}) in "
        f"{feed['processes']} process(es), pages of 100{paced}: {feed['pages_per_s']} pages/s, "
        f"{feed['items_per_s']:,} items/s, page p50 {feed['page_ms']['p50']} ms, "
        f"p99 {feed['page_ms']['p99']} ms; {feed['laps']} laps; errors {errors}; "
        f"refused in the warm-up {feed['refused_before_window']}; longest Retry-After "
        f"{feed['longest_retry_after_s']:g} s; "
        f"reader cpu {feed['reader_cpu_percent_of_one_core']} % of a core"
    )


def render_phase(number: int, phase: dict[str, Any]) -> Iterator[str]:
    """The lines of one --compare-readers phase."""
    per, split = phase["cpu_ms_per_batch"], phase["cpu_percent_of_one_core"]
    errors = ", ".join(f"{k}: {v}" for k, v in phase["errors"].items()) or "none"
    shared = " (with the readers' pages)" if phase["with_readers"] else ""
    got = phase.get("reader_pages_per_s")
    readers = "" if got is None else f"; readers {got} pages/s, {phase['reader_refusals']} errors"
    dead = ", ".join(f"{k} {v:,}" for k, v in phase["dead_rows_after"].items()) or "none"
    waited = phase["run_queue_ms_per_batch"]
    yield (
        f"  phase {number} {phase['name']:<14} {phase['events_per_s']:,} events/s, "
        f"p50 {phase['p50_ms']} ms, p99 {phase['p99_ms']} ms, errors {errors}; cpu per batch"
        f"{shared} api {per.get('api', 0)} ms, postgres {per.get('postgres', 0)} ms; waited "
        f"for a core per batch: {_run_queue(waited)}; % of a "
        f"core: api {split['api']}, postgres {split['postgres']}{_own_groups(split)}, "
        f"other {split['other']}, idle {split['idle']}{readers}; dead rows left: {dead}"
    )


def _own_groups(split: dict[str, float]) -> str:
    """The readers' API and the replica, when the run has them."""
    named = (
        ("reader_api", "readers' api"),
        ("postgres_for_readers", "postgres for the readers' api"),
        ("replica", "replica"),
    )
    return "".join(f", {label} {split[key]}" for key, label in named if key in split)


def render(report: dict[str, Any]) -> Iterator[str]:
    """The human-readable lines of a report."""
    c, lat, cpu = report["config"], report["latency_ms"], report["cpu"]
    raw, frac, split = report["raw_copy"], report["fraction_of_raw"], cpu["percent_of_one_core"]
    yield (
        f"hub ingest: {c['clients']} clients in {c['load_processes']} load process(es), "
        f"{c['api_workers']} API worker(s), batches of {c['batch']} from {c['cameras']} camera(s), "
        f"{c['duration_s']:g} s timed after {c['warmup_s']:g} s warm-up"
        + (
            f", open loop at {c['offered_events_per_s']:,} events/s offered (latency from when "
            "each batch was due)"
            if c["offered_events_per_s"]
            else ""
        )
    )
    yield (
        f"  note: the load generator shares this machine's {cpu['cores']} cores "
        "with the API, PostgreSQL and Redis"
    )
    if c["reader_api"]:
        yield (
            f"  readers' api    {c['reader_api']['workers']} worker(s) of their own under nice "
            f"{c['reader_api']['nice']}, page budget open (docs/deploy.md)"
        )
    if c["replica"]:
        yield (
            "  replica         a private primary and streaming replica (replica under nice "
            f"{c['replica']['nice']}); feed pages read the replica while it is fresh; COPY's "
            "reference runs on that primary"
        )
    yield (
        f"  accepted        {report['events_per_s']:,} events/s "
        f"({report['events_accepted']:,} events)"
    )
    yield f"  requests        {report['requests_per_s']:,} /s"
    yield (
        f"  latency/batch   p50 {lat['p50']} ms, p90 {lat['p90']} ms, "
        f"p99 {lat['p99']} ms, max {lat['max']} ms"
    )
    errors = ", ".join(f"{k}: {v}" for k, v in report["errors"].items()) or "none"
    yield (
        f"  errors          {errors} "
        f"(events not accepted inside 200 answers: {report['events_not_accepted']})"
    )
    yield (
        f"  server workers  {report['server_workers']} "
        f"(% of a core per busy API process: {cpu['api_processes_busy']})"
    )
    yield (
        f"  cpu, % of one core (machine = {cpu['cores'] * 100}): api {split['api']}, "
        f"postgres {split['postgres']}, redis {split['redis']}, "
        f"load generator {split['load_generator']}"
        + (f", feed readers {split['feed_readers']}" if "feed_readers" in split else "")
        + f"{_own_groups(split)}, other {split['other']}, idle {split['idle']}"
    )
    per = report["cpu_ms_per_batch"]
    if per:
        yield (
            f"  cpu per batch   api {per['api']} ms, postgres {per['postgres']} ms, "
            f"redis {per['redis']} ms, load generator {per['load_generator']} ms; waited for "
            f"a core: {_run_queue(report['run_queue_ms_per_batch'])}"
        )
    if split["other"] > OTHER_CPU_WARNING:
        yield (
            f"  warning: other processes used {split['other']} % of a core during the run; "
            "rates and latencies are pessimistic, compare cpu per batch instead"
        )
    if report["bodies_built_during_run"]:
        yield f"  warning: {report['bodies_built_during_run']} bodies were built during the run"
    yield (
        f"  raw COPY        {raw['batched_rows_per_s']:,} rows/s in batches of {c['batch']} "
        f"(a commit each; median of {_rounds(raw['batched_rounds_before'])} before the load "
        f"and {_rounds(raw['batched_rounds_after'])} after it); "
        f"{raw['one_copy_rows_per_s']:,} rows/s in one copy of {raw['rows']:,}"
    )
    copy_cpu = raw["batched_cpu_ms_per_batch"]
    yield (
        f"  COPY cpu/batch  postgres {copy_cpu['postgres']} ms, client {copy_cpu['client']} ms "
        f"(median of the batched timings; ingest's: {_hub_cpu(per)})"
    )
    yield (
        f"  accepted/raw    {frac['batched']:.1%} of batched COPY, "
        f"{frac['one_copy']:.1%} of one big COPY (aim {frac['aim']:.0%})"
    )
    met = "MET" if report["target"]["met"] else "NOT MET"
    if c["offered_events_per_s"]:  # the rate is what was offered, not what the hub can take
        met = "not judged (open loop)"
    yield (
        f"  target          >= {TARGET_EVENTS_PER_S:,} events/s with p99 < {TARGET_P99_MS:g} ms "
        f"per batch: {met}"
    )
    if "feed_readers" in report or "compare_readers" in report:
        yield from render_readers(report)


# ---------------------------------------------------------------------------------------------
# Entry point


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description="Benchmark POST /v1/edge/events with signed batches against scratch services.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent keep-alive clients")
    parser.add_argument("--duration", type=float, default=15.0, help="timed seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before timing")
    parser.add_argument("--batch", type=int, default=100, help="events per request (max 500)")
    parser.add_argument(
        "--cameras",
        type=int,
        default=CAMERAS,
        help="cameras behind the one edge node (a camera box has a few; ingest policy judges "
        "each camera/class-list group of a batch once)",
    )
    parser.add_argument("--workers", type=int, default=2, help="API worker processes")
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes")
    parser.add_argument(
        "--pool-rate", type=int, default=30_000,
        help="events/s to pre-sign bodies for; beyond it bodies are signed while sending",
    )  # fmt: skip
    parser.add_argument(
        "--ingest-rate", type=int, default=0,
        help="events/s offered in all, open loop (batches on a schedule, latency from when each "
        "was due); 0: closed loop, each client sends its next batch when the last is answered",
    )  # fmt: skip
    parser.add_argument("--raw-rows", type=int, default=30_000, help="rows for raw COPY figures")
    parser.add_argument(
        "--feed-readers", type=int, default=0,
        help="REST agency feed readers paging GET /v1/feeds/events beside the ingest load "
        "(closed loop, pages of 100, from the start of the feed again at its end)",
    )  # fmt: skip
    parser.add_argument("--reader-procs", type=int, default=1, help="feed-reader processes")
    parser.add_argument(
        "--reader-rate", type=float, default=0.0,
        help="pages/s per feed reader at most (0: back to back, a closed loop)",
    )  # fmt: skip
    parser.add_argument(
        "--compare-readers", action="store_true",
        help="time ingest three times in one run: alone, beside --feed-readers readers, alone "
        "again; print every phase and the p99 beside them over the mean of the alone p99s",
    )  # fmt: skip
    parser.add_argument(
        "--rounds", type=int, default=1,
        help="with --compare-readers, N alone/beside pairs and a last alone phase; the ratio is "
        "the median beside p99 over the median alone p99 (robuster on a shared machine)",
    )  # fmt: skip
    parser.add_argument(
        "--shut-out-reference", action="store_true",
        help="with --compare-readers, a fourth phase beside the readers with the feed page "
        "budget beside ingest at 1 ms/s (every page refused), on a restarted API",
    )  # fmt: skip
    parser.add_argument(
        "--control", action="store_true",
        help="with --compare-readers, run the 'beside' phases without readers (an A-A run): "
        "the spread of the ratio when readers change nothing, to read a real run against",
    )  # fmt: skip
    parser.add_argument(
        "--reader-api", action="store_true",
        help="send the feed readers to API processes of their own, started under nice with "
        "the page budget open (docs/deploy.md, 'Feed readers on API processes of their own')",
    )  # fmt: skip
    parser.add_argument("--reader-workers", type=int, default=2, help="with --reader-api: workers")
    parser.add_argument(
        "--reader-nice", type=int, default=10, help="with --reader-api: its nice value"
    )
    parser.add_argument(
        "--reader-cpus", type=int, nargs="+", default=None,
        help="with --reader-api: the CPUs its processes may run on (sched_setaffinity)",
    )  # fmt: skip
    parser.add_argument(
        "--replica", action="store_true",
        help="run on a private PostgreSQL primary with a streaming replica (this machine's "
        "binaries, free loopback ports, removed afterwards); the APIs get it as "
        "HUB_DATABASE_REPLICA_URL, so feed pages read it while it is fresh (ADR 0016); "
        "COPY's reference runs on the same primary",
    )  # fmt: skip
    parser.add_argument(
        "--split-cores", action="store_true",
        help="with --replica and --reader-api on a 2-core machine: two hosts of a core each, "
        "ingest's API and the primary on CPU 0, the readers' API, the replica and the load "
        "and reader processes on CPU 1 (COPY's reference then runs on CPU 0's primary too)",
    )  # fmt: skip
    parser.add_argument(
        "--replica-nice", type=int, default=10,
        help="with --replica: the nice value of the replica's server (0: the primary's)",
    )  # fmt: skip
    parser.add_argument(
        "--runs", type=int, default=1,
        help="whole runs one after another, each with its own scratch database and COPY "
        "reference; the medians and how many runs met each aim are printed after them",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    problem = _invalid(args)
    if problem:
        parser.error(problem)
    return args


def _invalid(args: argparse.Namespace) -> str | None:
    """What is wrong with the options, or None (each check is cheap: all are made)."""
    checks = (
        (args.runs < 1, "need --runs >= 1"),
        (
            args.ingest_rate < 0 or args.ingest_rate > args.pool_rate,
            "need 0 <= --ingest-rate <= --pool-rate (bodies are signed before the run)",
        ),
        (
            not 1 <= args.batch <= 500 or min(args.clients, args.workers, args.procs) < 1,
            "need 1 <= --batch <= 500 and --clients, --workers, --procs >= 1",
        ),
        (
            args.duration <= 0 or args.warmup < 0 or args.raw_rows < args.batch,
            "need --duration > 0, --warmup >= 0 and --raw-rows >= --batch",
        ),
        (
            args.feed_readers < 0 or args.reader_procs < 1 or args.reader_rate < 0,
            "need --feed-readers >= 0, --reader-procs >= 1 and --reader-rate >= 0",
        ),
        (
            args.compare_readers and not args.feed_readers,
            "--compare-readers needs --feed-readers N (N > 0)",
        ),
        (
            args.rounds < 1 or (args.rounds > 1 and not args.compare_readers),
            "--rounds N needs N >= 1 and, above 1, --compare-readers",
        ),
        (
            (args.shut_out_reference or args.control) and not args.compare_readers,
            "--shut-out-reference and --control need --compare-readers",
        ),
        (args.reader_api and not args.feed_readers, "--reader-api needs --feed-readers N (N > 0)"),
        (
            args.reader_workers < 1 or not 0 <= args.reader_nice <= 19,
            "need --reader-workers >= 1 and 0 <= --reader-nice <= 19",
        ),
        (not 0 <= args.replica_nice <= 19, "need 0 <= --replica-nice <= 19"),
        (
            args.split_cores
            and not (args.replica and args.reader_api and (os.cpu_count() or 1) >= 2),
            "--split-cores needs --replica, --reader-api and 2 CPUs",
        ),
    )
    return next((message for wrong, message in checks if wrong), None)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up the scratch services, load the API, measure raw COPY, always clean up."""
    scratch = Scratch(settings=load_settings())
    everywhere = os.sched_getaffinity(0)
    try:
        if args.split_cores:  # this process, its load and reader processes: the far side
            os.sched_setaffinity(0, FAR_SIDE)
            scratch.ingest_cpus = INGEST_SIDE
        if args.replica:
            scratch.pair = PrivatePair(
                primary_port=free_port(),
                replica_port=free_port(),
                replica_nice=args.replica_nice,
                primary_cpus=INGEST_SIDE if args.split_cores else None,
                replica_cpus=FAR_SIDE if args.split_cores else None,
            )
            log(f"starting a private primary and streaming replica (replica under nice "
                f"{args.replica_nice})")  # fmt: skip
            scratch.pair.start()
        log(f"scratch database hub_bench_{scratch.tag}, Redis prefix {scratch.redis_prefix}")
        scratch.hub("migrate")
        key_id, key_pem = scratch.add_node(cameras=args.cameras)
        rows = raw_rows(uuid.UUID(key_id), args.raw_rows, batch=args.batch)
        log(f"raw COPY of {args.raw_rows:,} rows, before the load")
        before, _ = asyncio.run(
            measure_raw(scratch.database_url, rows=rows, batch=args.batch, whole=False)
        )
        tokens = scratch.add_feed_readers(args.feed_readers) if args.feed_readers else []
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        scratch.start_api(port=port, workers=args.workers)
        scratch.wait_ready(base_url, workers=args.workers)
        assert scratch.api is not None
        plans = plan_load(args, base_url=base_url, key_id=key_id, key_pem=key_pem)
        readers_url = base_url
        if args.reader_api:
            reader_port = free_port()
            cpus = FAR_SIDE if args.split_cores else set(args.reader_cpus or ()) or None
            scratch.start_reader_api(
                port=reader_port, workers=args.reader_workers, nice=args.reader_nice, cpus=cpus
            )
            readers_url = f"http://127.0.0.1:{reader_port}"
        readers = plan_readers(args, base_url=readers_url, tokens=tokens) if tokens else None
        database = f"hub_bench_{scratch.tag}"
        phases = None
        if args.compare_readers and readers:
            phases = run_phases(
                scratch, plans, readers, api=(port, args.workers),
                shut_out=args.shut_out_reference, rounds=args.rounds, control=args.control,
            )  # fmt: skip
            first = phases[0].load
            load = next(p.load for p in phases if p.with_readers)
        else:
            load = run_load(
                plans, api_pid=scratch.api.pid, database=database, readers=readers,
                roots=scratch.roots(),
            )  # fmt: skip
            first = load
        scratch.stop_api()
        scratch.stop_reader_api()
        log(f"raw COPY of {args.raw_rows:,} rows, after the load")
        after, whole = asyncio.run(
            measure_raw(scratch.database_url, rows=rows, batch=args.batch, whole=True)
        )
        assert whole is not None
        raw = raw_figures(before, after, whole, rows=args.raw_rows)
        # Compared, the main figures are the first phase's (ingest alone, as without the
        # option) and every phase is summarised beside them.
        report = build_report(args, first, raw, procs=len(plans))
        if readers:
            add_reader_figures(report, args, beside=load, phases=phases)
        return report
    finally:
        scratch.close()
        os.sched_setaffinity(0, everywhere)


def summarise_runs(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Each run's headline figures, their medians, and how many runs met each aim.

    One run's ratio to COPY moves with its reference (batched COPY moved by half within
    minutes on one machine), so a claim about the aim rests on several runs, not the best."""
    rows = [
        {
            "events_per_s": r["events_per_s"],
            "p99_ms": r["latency_ms"]["p99"],
            "batched_copy_rows_per_s": r["raw_copy"]["batched_rows_per_s"],
            "fraction_of_batched_copy": r["fraction_of_raw"]["batched"],
            "cpu_ms_per_batch": r["cpu_ms_per_batch"],
            "copy_cpu_ms_per_batch": _copy_cpu(r["raw_copy"]),
            "idle_percent": r["cpu"]["percent_of_one_core"]["idle"],
        }
        for r in reports
    ]
    aim = reports[0]["fraction_of_raw"]["aim"]
    return {
        "runs": rows,
        "median": {
            key: round(statistics.median(row[key] for row in rows), 3)
            for key in (
                "events_per_s",
                "p99_ms",
                "batched_copy_rows_per_s",
                "fraction_of_batched_copy",
                "copy_cpu_ms_per_batch",
                "idle_percent",
            )
        },
        "target_met": sum(r["target"]["met"] for r in reports),
        "aim_met": sum(row["fraction_of_batched_copy"] >= aim for row in rows),
        "aim": aim,
    }


def render_runs(summary: dict[str, Any]) -> Iterator[str]:
    """The lines of `summarise_runs` for a terminal."""
    count = len(summary["runs"])
    yield f"{count} runs:"
    for n, row in enumerate(summary["runs"], 1):
        cpu = row["cpu_ms_per_batch"]
        yield (
            f"  run {n}  {row['events_per_s']:,} events/s, p99 {row['p99_ms']} ms, "
            f"{row['fraction_of_batched_copy']:.1%} of batched COPY "
            f"({row['batched_copy_rows_per_s']:,} rows/s), api {cpu['api']} + postgres "
            f"{cpu['postgres']} ms per batch (COPY {row['copy_cpu_ms_per_batch']} ms), "
            f"idle {row['idle_percent']} %"
        )
    median = summary["median"]
    yield (
        f"  median {median['events_per_s']:,.0f} events/s, p99 {median['p99_ms']} ms, "
        f"{median['fraction_of_batched_copy']:.1%} of batched COPY "
        f"({median['batched_copy_rows_per_s']:,.0f} rows/s, COPY "
        f"{median['copy_cpu_ms_per_batch']} ms CPU per batch), idle {median['idle_percent']} %"
    )
    yield (
        f"  target (>= {TARGET_EVENTS_PER_S:,}/s, p99 < {TARGET_P99_MS:g} ms) met in "
        f"{summary['target_met']} of {count}; {summary['aim']:.0%} of batched COPY reached in "
        f"{summary['aim_met']} of {count}"
    )


def main() -> None:
    """Run once (or `--runs N` times) and print the figures (exit status 0 even when the
    target is missed)."""
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` still cleans up
    reports = []
    for n in range(args.runs):
        if args.runs > 1:
            log(f"run {n + 1} of {args.runs}")
        reports.append(run(args))
    if args.runs == 1:
        output: Any = reports[0]
        lines = list(render(reports[0]))
    else:
        output = {"reports": reports, "summary": summarise_runs(reports)}
        lines = [line for report in reports for line in render(report)]
        lines += list(render_runs(output["summary"]))
    print(msgspec.json.encode(output).decode() if args.json else "\n".join(lines))


if __name__ == "__main__":
    main()
