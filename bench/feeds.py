"""Agency feeds: items released per second and page p99, closed and open loop, per agency.

Runs against scratch resources removed afterwards: a database `hub_bench_<random>` on the
server of HUB_DATABASE_URL (migrated with `hub migrate`), Redis keys under `bench:<random>:`,
a tokens file and a `hub api` subprocess on a free loopback port.

`--events` events are bulk-loaded with COPY (the feed trigger queues them) as ingest stores
them (their detection attributes sealed in the PII vault, so pages pay its hydration) and
given feed positions; one in ten comes from the north camera, so police-north may see 10 % of
the feed and the two central agencies 90 %. Walk (closed loop): `--clients` agency clients (spread
over the three demo agencies) each page through their whole feed with `limit=100` as fast as
they can; every page start is kept. Open loop: pages are requested at a fixed `--rate` for
`--duration` seconds, each from a random kept cursor of a random client, whether or not
earlier pages have answered; a page's latency runs from when it was due (so a stall counts
against every page that waited), per agency. Every item goes through `release()` and every
page is audited. Live: `--subscribers` WebSocket clients connect, then events are committed
one transaction at a time and announced exactly as ingest's after-commit hook does (sequence,
publish); latency is commit -> message received. The load generator shares the machine with
the API, PostgreSQL and Redis; CPU per page (API and PostgreSQL, from /proc) is the figure to
compare on a busy machine.

    .venv/bin/python bench/feeds.py                      # the issue's figures (slow)
    .venv/bin/python bench/feeds.py --events 10000 --duration 10 --live-events 0
"""

import argparse
import asyncio
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import httpx
import msgspec
from _feedkit import (
    AGENCIES,
    TRANSPORT_ERRORS,
    Refused,
    agency_token,
    get_page,
    register_agencies,
    session,
)
from ingest import TRIED_SETTINGS, cpu_split, sample_cpu  # bench/ingest.py, a sibling
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake

from hub.contracts.detection_v1 import DetectionEvent
from hub.feeds.repository import sequence_pending
from hub.feeds.schemas import FeedNotice
from hub.ingest.rules import prepare
from hub.retention.crypto import KeyRing
from hub.retention.vault import seal_events, strip_payload
from hub.settings import load_settings

GOAL_PAGE_P99_MS = 50.0
GOAL_ITEMS_PER_S = 20_000
GOAL_LIVE_P99_MS = 250.0
PII_MASTER_KEY_ID = "1"
CAMERAS = ["demo-cam-1", "demo-cam-2", "demo-cam-3"]
COLUMNS = (
    "node_id", "event_id", "captured_at", "camera_id", "classes", "max_confidence",
    "content_sha256", "payload",
)  # fmt: skip


def log(message: str) -> None:
    """Progress on stderr; figures go to stdout."""
    print(f"[feeds bench] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of the sorted values lie."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def payload(camera: str, at: datetime) -> dict[str, Any]:
    """A detection event as the edge sends it (~600 bytes)."""
    return {
        "event_id": str(uuid.uuid4()),
        "camera_id": camera,
        "captured_at": at.isoformat(),
        "model_name": "hub-detector-v2",
        "model_version": "2.1",
        "detections": [
            {"label": "person", "confidence": 0.91, "track_id": "t1",
             "box": {"x": 0.1, "y": 0.2, "width": 0.3, "height": 0.4}},
            {"label": "plate", "confidence": 0.77, "attributes": {"plate_text": "AB-123-CD"},
             "box": {"x": 0.5, "y": 0.5, "width": 0.2, "height": 0.1}},
        ],
    }  # fmt: skip


def stored(node_id: uuid.UUID, camera: str, at: datetime) -> tuple[DetectionEvent, tuple[Any, ...]]:
    """One event and its detection_event row for COPY, as ingest stores it: the canonical
    payload with its attributes sealed away (`pii_ref`; `seal` puts them in the vault), so
    every page pays the vault's hydration as it does for ingested events."""
    event = msgspec.convert(payload(camera, at), DetectionEvent)
    prepared = prepare(event)
    return event, (
        node_id, event.event_id, at, camera, ["person", "plate"], 0.91,
        prepared.content_sha256, strip_payload(event, prepared.payload, node_id=node_id).decode(),
    )  # fmt: skip


async def store(
    conn: asyncpg.Connection, keys: KeyRing, made: list[tuple[DetectionEvent, tuple[Any, ...]]]
) -> None:
    """COPY events in and their attributes into the PII vault, in one transaction (as
    ingest's)."""
    events = [e for e, _ in made]
    async with conn.transaction():
        await conn.copy_records_to_table(
            "detection_event", records=[r for _, r in made], columns=COLUMNS
        )
        found = await conn.fetch(
            "SELECT event_id, id, captured_at FROM detection_event"
            " WHERE event_id = ANY($1::uuid[])",
            [e.event_id for e in events],
        )
        rows = {r["event_id"]: (r["id"], r["captured_at"]) for r in found}
        await seal_events(conn, keys, events=events, rows=rows)


def camera_of(i: int) -> str:
    """One event in ten from the north camera (police-north), the rest central."""
    return CAMERAS[0] if i % 10 == 0 else CAMERAS[1 + i % 2]


class Scratch:
    """The resources this run owns; `close()` removes all of them."""

    def __init__(self) -> None:
        self.settings = load_settings()
        self.tag = secrets.token_hex(4)
        self.folder = Path(tempfile.mkdtemp(prefix="hub-bench-feeds-"))
        self.tokens_file = self.folder / "tokens.toml"
        self.pii_keys = self.folder / "keys" / "pii"  # the seed seals with the API's keys
        self.node_id = uuid.uuid4()  # the edge node the events came from
        parts = urlsplit(self.settings.database_url)
        self.database_url = urlunsplit(parts._replace(path=f"/hub_bench_{self.tag}"))
        self.redis_prefix = f"bench:{self.tag}:"
        self.api: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        """The environment of the hub subprocesses."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        env.update(
            HUB_DATABASE_URL=self.database_url,
            HUB_REDIS_URL=self.settings.redis_url,
            HUB_REDIS_PREFIX=self.redis_prefix,
            HUB_LOG_LEVEL="warning",
            HUB_MEDIA_DIR=str(self.folder / "media"),
            HUB_SECRETS_DIR=str(self.folder / "keys"),
            HUB_PII_KEYS_DIR=str(self.pii_keys),
            HUB_PII_MASTER_KEY_ID=PII_MASTER_KEY_ID,
            HUB_API_TOKENS_FILE=str(self.tokens_file),
            HUB_RATELIMIT_ENABLED="false",
            HUB_DB_POOL_MAX="20",
        )
        # The feed page budget (ADR 0026) and connection recycling (ADR 0031) may be tried
        # from the caller's environment.
        env.update({k: v for k, v in os.environ.items() if k.startswith(TRIED_SETTINGS)})
        return env

    def hub(self, *args: str) -> None:
        """Run one `hub` command or fail with its stderr."""
        done = subprocess.run(  # noqa: S603 - our own interpreter and fixed arguments
            [sys.executable, "-m", "hub.cli.main", *args],
            env=self.env(), capture_output=True, check=False, timeout=300,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"hub {' '.join(args)} failed:\n{done.stderr.decode()}")

    def start_api(self, port: int, workers: int) -> str:
        """`hub api` on loopback; its base URL once /readyz answers."""
        sink = (self.folder / "api.log").open("wb")
        self.api = subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
            [sys.executable, "-m", "hub.cli.main", "api", "--host", "127.0.0.1",
             "--port", str(port), "--workers", str(workers)],
            env=self.env(), stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.api.poll() is not None:
                raise RuntimeError((self.folder / "api.log").read_text()[-3000:])
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    time.sleep(1.0 * workers)  # let every worker process finish starting
                    return base
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("hub api did not become ready")

    def keys(self) -> KeyRing:
        """The PII key ring the API opens the vault with (created on first use)."""
        return KeyRing.load(self.pii_keys, current_id=PII_MASTER_KEY_ID)

    def token(self, agency: str) -> str:
        """An agency client token."""
        return agency_token(self.tokens_file, agency)

    async def close(self) -> None:
        """Stop the API, drop the database and Redis keys, remove the folder."""
        if self.api is not None and self.api.poll() is None:
            os.killpg(self.api.pid, signal.SIGTERM)
            self.api.wait(20)
        conn = await asyncpg.connect(
            urlunsplit(urlsplit(self.database_url)._replace(path="/postgres"))
        )
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "hub_bench_{self.tag}" WITH (FORCE)')
        finally:
            await conn.close()
        from redis.asyncio import Redis

        redis = Redis.from_url(self.settings.redis_url)
        try:
            keys = [k async for k in redis.scan_iter(match=f"{self.redis_prefix}*", count=1000)]
            if keys:
                await redis.delete(*keys)
        finally:
            await redis.aclose()
        shutil.rmtree(self.folder, ignore_errors=True)


async def seed(scratch: Scratch, events: int) -> None:
    """Register the agencies, COPY the events in (their attributes sealed in the vault) and
    give them feed positions."""
    keys = scratch.keys()
    conn = await asyncpg.connect(scratch.database_url)
    try:
        await register_agencies(conn)
        start = datetime.now(UTC) - timedelta(hours=1)
        for first in range(0, events, 10_000):
            made = [
                stored(scratch.node_id, camera_of(i), start + timedelta(milliseconds=i * 10))
                for i in range(first, min(events, first + 10_000))
            ]
            await store(conn, keys, made)
        async with conn.transaction():
            await sequence_pending(conn)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def page_through(
    http: aiohttp.ClientSession, token: str, latencies: list[float], cursors: list[str | None]
) -> int:
    """One client: every page of its feed, in order; returns the items it got. A page the
    hub refuses (503 feeds_busy, over its page budget) is asked again after its Retry-After
    (at most `MAX_REFUSALS` times in a row), and its time counts in the page's latency."""
    cursor: str | None = None
    items = 0
    while True:
        cursors.append(cursor)
        t0 = time.perf_counter()
        got, cursor, more = await get_page_honouring(http, token, cursor)
        latencies.append(time.perf_counter() - t0)
        items += got
        if not more:
            return items


MAX_REFUSALS = 20
REFUSED: Counter[str] = Counter()  # refused pages of this run (printed with the walk)


async def get_page_honouring(
    http: aiohttp.ClientSession, token: str, cursor: str | None
) -> tuple[int, str, bool]:
    """`get_page`, waiting out a 503's Retry-After (as agency readers must) and asking again."""
    for _ in range(MAX_REFUSALS):
        try:
            return await get_page(http, token, cursor)
        except Refused as exc:
            if exc.status != 503:
                raise
            REFUSED["walk"] += 1
            await asyncio.sleep(float(exc.retry_after or "1"))
    return await get_page(http, token, cursor)


async def walk_phase(
    base: str, tokens: list[tuple[str, str]], cpu: "CpuWindow"
) -> tuple[dict[str, Any], dict[str, list[str | None]]]:
    """Closed loop: every client pages through its whole feed at once; the page starts."""
    latencies: list[float] = []
    cursors: dict[str, list[str | None]] = {token: [] for _, token in tokens}
    async with session(base, len(tokens)) as http:
        cpu.start()
        t0 = time.perf_counter()
        items = await asyncio.gather(
            *(page_through(http, t, latencies, cursors[t]) for _, t in tokens)
        )
        elapsed = time.perf_counter() - t0
        split = cpu.stop()
    report = {
        "pages": len(latencies),
        "items_released": sum(items),
        "seconds": round(elapsed, 2),
        "pages_per_s": round(len(latencies) / elapsed, 1),
        "items_per_s": round(sum(items) / elapsed),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "refused_503": REFUSED["walk"],
        **per_page(split, len(latencies)),
    }
    return report, cursors


async def open_loop_phase(
    base: str,
    tokens: list[tuple[str, str]],
    cursors: dict[str, list[str | None]],
    *,
    rate: float,
    duration: float,
    cpu: "CpuWindow",
) -> dict[str, Any]:
    """Pages due at a fixed rate from random kept cursors; latency from when each was due."""
    rng = random.Random(7)
    by_agency: dict[str, list[float]] = {name: [] for name, _ in tokens}
    items: dict[str, int] = dict.fromkeys(by_agency, 0)

    errors: Counter[str] = Counter()

    async def one(agency: str, token: str, due: float, http: aiohttp.ClientSession) -> None:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        try:
            got, _, _ = await get_page(http, token, rng.choice(cursors[token]))
        except Refused as exc:  # an overloaded hub answers 503: count it
            errors[str(exc.status)] += 1
            return
        except TRANSPORT_ERRORS as exc:  # or drops the connection: count that too
            errors[type(exc).__name__] += 1
            return
        by_agency[agency].append(time.perf_counter() - due)
        items[agency] += got

    count = int(rate * duration)
    async with session(base, 200) as http:
        cpu.start()
        t0 = time.perf_counter() + 0.5
        plan = [(*tokens[i % len(tokens)], t0 + i / rate) for i in range(count)]
        await asyncio.gather(*(one(a, t, due, http) for a, t, due in plan))
        elapsed = time.perf_counter() - t0
        split = cpu.stop()
    every = [v for values in by_agency.values() for v in values]
    return {
        "rate_offered": rate,
        "pages": len(every),
        "errors": dict(errors),
        "seconds": round(elapsed, 2),
        "items_per_s": round(sum(items.values()) / elapsed),
        "p50_ms": round(percentile(every, 0.50) * 1000, 1),
        "p99_ms": round(percentile(every, 0.99) * 1000, 1),
        "by_agency": {
            name: {
                "pages": len(values),
                "items_per_page": round(items[name] / max(1, len(values)), 1),
                "p50_ms": round(percentile(values, 0.50) * 1000, 1),
                "p99_ms": round(percentile(values, 0.99) * 1000, 1),
            }
            for name, values in by_agency.items()
        },
        **per_page(split, len(every)),
    }


class CpuWindow:
    """CPU of the API's process tree and of PostgreSQL (this run's sessions and the server's
    own processes, not other databases') over a window (from /proc)."""

    def __init__(self, api_pid: int, database: str) -> None:
        self.api_pid = api_pid
        self.database = database
        self._before: Any = None
        self._load_before = 0.0

    def start(self) -> None:
        """Open the window."""
        self._before = sample_cpu()
        self._load_before = time.process_time()

    def stop(self) -> dict[str, Any]:
        """Close the window: percent of one core per group, and its length. The load
        generator is this process alone (its child, the API, is a group of its own)."""
        after = sample_cpu()
        load = time.process_time() - self._load_before
        split = cpu_split(
            self._before, after, api_pid=self.api_pid, load_pids=set(), database=self.database
        )
        seconds = after.at - self._before.at
        split["percent_of_one_core"]["load_generator"] = round(load / seconds * 100, 1)
        return {**split, "seconds": seconds}


def per_page(split: dict[str, Any], pages: int) -> dict[str, Any]:
    """CPU milliseconds per page of the API and of PostgreSQL (all of its sessions)."""
    share = split["percent_of_one_core"]
    return {
        "cpu_percent_of_one_core": share,
        "api_cpu_ms_per_page": round(share["api"] * 10 * split["seconds"] / max(1, pages), 2),
        "postgres_cpu_ms_per_page": round(
            share["postgres"] * 10 * split["seconds"] / max(1, pages), 2
        ),
        "load_generator_cpu_ms_per_page": round(
            share["load_generator"] * 10 * split["seconds"] / max(1, pages), 2
        ),
    }


async def live_phase(scratch: Scratch, base: str, tokens: list[str], count: int) -> dict[str, Any]:
    """Commit `count` events one by one; time commit -> arrival at each subscriber."""
    committed: dict[str, float] = {}
    latencies: list[float] = []
    url = base.replace("http://", "ws://") + "/v1/feeds/live"

    async def listen(token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        for attempt in range(5):  # a loaded machine may refuse a handshake (policy budget)
            try:
                async with connect(url, additional_headers=headers, open_timeout=30) as ws:
                    ready.append(1)
                    async for raw in ws:
                        arrived = time.perf_counter()
                        message = msgspec.json.decode(raw)
                        latencies.append(arrived - committed[message["event_id"]])
                    return
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                log(f"subscriber handshake failed ({exc!r:.80}); attempt {attempt + 1}")
                await asyncio.sleep(1)
        raise RuntimeError("a subscriber could not connect")

    ready: list[int] = []
    listeners = [asyncio.create_task(listen(t)) for t in tokens]
    while len(ready) < len(tokens):
        failed = [t for t in listeners if t.done()]
        if failed:
            failed[0].result()
        await asyncio.sleep(0.05)
    await asyncio.sleep(2.5)  # every API process has subscribed to the notice channel
    from redis.asyncio import Redis

    redis = Redis.from_url(scratch.settings.redis_url)
    keys = scratch.keys()
    conn = await asyncpg.connect(scratch.database_url)
    try:
        for i in range(count):
            event, record = stored(scratch.node_id, CAMERAS[i % 2], datetime.now(UTC))
            await store(conn, keys, [(event, record)])
            committed[str(event.event_id)] = time.perf_counter()
            async with conn.transaction():  # what ingest's after-commit hook does
                seqs = await sequence_pending(conn)
            notice = msgspec.json.encode(FeedNotice(first=seqs.first, last=seqs.last))
            await redis.publish(f"{scratch.redis_prefix}feeds:events", notice)
            await asyncio.sleep(0.02)
        await asyncio.sleep(3)
    finally:
        await conn.close()
        await redis.aclose()
        for task in listeners:
            task.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
    return {
        "events": count,
        "messages": len(latencies),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "max_ms": round(max(latencies, default=0) * 1000, 1),
    }


def free_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up, measure every phase, tear down."""
    scratch = Scratch()
    names = list(AGENCIES)
    try:
        log(f"scratch database hub_bench_{scratch.tag}; migrating")
        scratch.hub("migrate")
        rest_tokens = [(names[i % 3], scratch.token(names[i % 3])) for i in range(args.clients)]
        live_tokens = [scratch.token(names[i % 3]) for i in range(args.subscribers)]
        log(f"seeding {args.events} events")
        t0 = time.perf_counter()
        await seed(scratch, args.events)
        log(
            f"seeded in {time.perf_counter() - t0:.1f} s; starting hub api ({args.workers} workers)"
        )
        base = scratch.start_api(free_port(), args.workers)
        assert scratch.api is not None
        cpu = CpuWindow(scratch.api.pid, f"hub_bench_{scratch.tag}")
        log(f"walk: {args.clients} clients paging through {args.events} events")
        walk, cursors = await walk_phase(base, rest_tokens, cpu)
        log(f"open loop: {args.rate} pages/s for {args.duration} s")
        steady = await open_loop_phase(
            base, rest_tokens, cursors, rate=args.rate, duration=args.duration, cpu=cpu
        )
        live: dict[str, Any] = {}
        if args.live_events:
            log(f"live: {args.subscribers} subscribers, {args.live_events} events")
            live = await live_phase(scratch, base, live_tokens, args.live_events)
    finally:
        await scratch.close()
    return {
        "cpus": os.cpu_count(),
        "workers": args.workers,
        "events": args.events,
        "walk": walk,
        "open_loop": steady,
        "goal_page_p99_ms": GOAL_PAGE_P99_MS,
        "goal_items_per_s": GOAL_ITEMS_PER_S,
        "live": live,
        "live_goal_p99_ms": GOAL_LIVE_P99_MS,
    }


def main() -> None:
    """Parse arguments, run, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events in the feed")
    parser.add_argument("--clients", type=int, default=20, help="concurrent REST clients")
    parser.add_argument("--rate", type=float, default=40.0, help="open-loop pages per second")
    parser.add_argument("--duration", type=float, default=20.0, help="open-loop seconds")
    parser.add_argument("--subscribers", type=int, default=50, help="WebSocket subscribers")
    parser.add_argument("--live-events", type=int, default=200, help="events for the live test")
    parser.add_argument("--workers", type=int, default=2, help="hub api worker processes")
    report = asyncio.run(run(parser.parse_args()))
    walk, steady = report["walk"], report["open_loop"]
    print(msgspec.json.format(msgspec.json.encode(report)).decode())
    print(
        f"walk (closed loop): {walk['items_per_s']} items released/s "
        f"(goal >= {GOAL_ITEMS_PER_S}), {walk['pages_per_s']} pages/s, p99 {walk['p99_ms']} ms, "
        f"API {walk['api_cpu_ms_per_page']} ms + PostgreSQL {walk['postgres_cpu_ms_per_page']} "
        f"ms CPU per page (load generator {walk['load_generator_cpu_ms_per_page']} ms; other "
        f"processes {walk['cpu_percent_of_one_core']['other']} % of a core; "
        f"{walk['refused_503']} pages refused 503 and asked again)"
    )
    agencies = ", ".join(f"{n} p99 {a['p99_ms']} ms" for n, a in steady["by_agency"].items())
    print(
        f"open loop at {steady['rate_offered']} pages/s: {steady['items_per_s']} items "
        f"released/s, p99 {steady['p99_ms']} ms (goal < {GOAL_PAGE_P99_MS:.0f} ms; {agencies})"
        f" on {report['cpus']} CPUs, shared machine: compare CPU per page, not rates"
    )
    if report["live"]:
        print(f"live fan-out p99 {report['live']['p99_ms']} ms (goal < {GOAL_LIVE_P99_MS:.0f})")


if __name__ == "__main__":
    main()
