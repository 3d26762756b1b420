"""Sustained mixed load: signed ingest, agency feed paging, live subscribers and deliveries to
three agencies (REST, SOAP, XML), all at once for `--duration` seconds.

A scratch hub (database `hub_bench_<random>`, Redis keys under `bench:<random>:`, temporary
folder; all removed afterwards, see bench/delivery.py's `Scratch`) runs as real processes:
`hub api`, `--workers` x `hub worker` and one `hub demo-agency` serving the three agencies.
This process is the load: edge nodes posting signed batches at `--rate` events/s, agency
clients paging `/v1/feeds/events` and following the tail, WebSocket subscribers on
`/v1/feeds/live`. Printed: throughput and p50/p99 per route, error rate, the delivery backlog
over time, live latency, deliveries (unique / duplicates at the idempotent receiver) and the
RSS of every process (with its children) at start and end; growth over 10 % is flagged.

    .venv/bin/python bench/load.py                    # 180 s
    .venv/bin/python bench/load.py --duration 60      # a shorter run
"""

import argparse
import asyncio
import base64
import contextlib
import json
import random
import secrets
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

sys.path.insert(0, str(Path(__file__).resolve().parent))

from delivery import (  # a sibling script, not a package
    Scratch,
    event,
    free_port,
    log,
    percentile,
    register_agencies,
    secret_file,
)

from adapters.xml import generate_signing_identity
from edge.signing import RequestSigner, generate_key, public_key_pem
from hub.contracts.detection_v1 import EventBatch
from hub.identity import CameraCreate, NodeCreate, add_node
from hub.identity.tokens import TokenEntry, append_token, new_token, token_hash
from hub.runtime import build_services, start_services, stop_services
from hub.settings import Settings, load_settings

EVENTS = "/v1/edge/events"
FEED = "/v1/feeds/events"
BATCH = 20
MEMORY_GROWTH_LIMIT = 0.10
FEED_AGENCIES = {  # agency -> (jurisdictions, clearance, purpose) of its feed token
    "police-north": (["north"], 3, "investigation"),
    "transit-authority": (["central"], 2, "traffic"),
    "city-analytics": (["central"], 1, "statistics"),
}
OPEN = ("pending", "in_flight", "retrying")


@dataclass
class LoadScratch(Scratch):
    """bench/delivery.py's scratch hub plus a tokens file, no rate limits, a public URL."""

    api_port: int = field(default_factory=free_port)

    @property
    def settings(self) -> Settings:
        return msgspec.structs.replace(
            super().settings,
            api_tokens_file=str(self.folder / "tokens.toml"),
            ratelimit_enabled=False,
            public_base_url=f"http://127.0.0.1:{self.api_port}",
            metrics_dir=str(self.folder / "metrics"),
        )

    def token(self, agency: str) -> str:
        jurisdictions, clearance, purpose = FEED_AGENCIES[agency]
        token = new_token()
        append_token(
            Path(self.settings.api_tokens_file),
            TokenEntry(
                sha256=token_hash(token),
                subject=f"load-{agency}-{uuid.uuid4().hex[:6]}",
                kind="client",
                roles=["agency"],
                agency=agency,
                jurisdictions=jurisdictions,
                clearance=clearance,
                purpose=purpose,
            ),
        )
        return token


@dataclass
class Stats:
    """What the load saw, per route."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[str, dict[int, int]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)  # transport errors
    posted_at: dict[str, float] = field(default_factory=dict)  # event id -> answer time
    events_accepted: int = 0
    live_messages: int = 0
    live_latencies: list[float] = field(default_factory=list)
    feed_items: int = 0

    def record(self, route: str, seconds: float, status: int) -> None:
        self.latencies.setdefault(route, []).append(seconds)
        counts = self.statuses.setdefault(route, {})
        counts[status] = counts.get(status, 0) + 1

    def failed(self, route: str) -> None:
        self.errors[route] = self.errors.get(route, 0) + 1


def rss_kib(pid: int) -> int:
    """Resident memory of a process and its descendants (KiB; 0 when gone)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


async def ingest_load(
    http: httpx.AsyncClient,
    signer: RequestSigner,
    base: str,
    stats: Stats,
    *,
    rate: float,
    stop: asyncio.Event,
) -> None:
    """Post batches of BATCH events at `rate` events/s (cameras 1 and 2 alternating)."""
    rng = random.Random(11)
    interval, start, n = BATCH / rate, time.monotonic(), 0
    while not stop.is_set():
        now = datetime.now(UTC)
        events = [event(rng, f"demo-cam-{1 + (i % 2)}", now) for i in range(BATCH)]
        body = msgspec.json.encode(EventBatch(events=events))
        headers = {
            **signer.sign(method="POST", url=f"{base}{EVENTS}", body=body),
            "Content-Type": "application/json",
        }
        t0 = time.perf_counter()
        try:
            response = await http.post(EVENTS, content=body, headers=headers)
        except httpx.HTTPError:
            stats.failed("POST /v1/edge/events")
        else:
            stats.record("POST /v1/edge/events", time.perf_counter() - t0, response.status_code)
            if response.status_code == 200:
                stats.events_accepted += int(response.json()["accepted"])
                at = time.perf_counter()
                for e in events:
                    stats.posted_at[str(e.event_id)] = at
        n += 1
        delay = start + n * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


async def feed_client(
    http: httpx.AsyncClient, token: str, stats: Stats, stop: asyncio.Event
) -> None:
    """Page through the feed from the start, then follow its tail (short pauses)."""
    headers = {"Authorization": f"Bearer {token}"}
    cursor: str | None = None
    while not stop.is_set():
        params: dict[str, Any] = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        t0 = time.perf_counter()
        try:
            response = await http.get(FEED, params=params, headers=headers)
        except httpx.HTTPError:
            stats.failed("GET /v1/feeds/events")
            await asyncio.sleep(0.5)
            continue
        stats.record("GET /v1/feeds/events", time.perf_counter() - t0, response.status_code)
        if response.status_code != 200:
            await asyncio.sleep(0.5)
            continue
        body = response.json()
        stats.feed_items += len(body["items"])
        cursor = body["next_cursor"] or cursor
        if not body["has_more"]:
            await asyncio.sleep(0.25)


async def subscriber(url: str, token: str, stats: Stats, stop: asyncio.Event) -> None:
    """A live subscriber; reconnects when closed while the load runs."""
    headers = {"Authorization": f"Bearer {token}"}
    while not stop.is_set():
        try:
            async with connect(url, additional_headers=headers, open_timeout=30) as ws:
                while not stop.is_set():
                    try:
                        raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
                    except TimeoutError:
                        continue
                    arrived = time.perf_counter()
                    stats.live_messages += 1
                    sent = stats.posted_at.get(msgspec.json.decode(raw).get("event_id", ""))
                    if sent is not None:
                        stats.live_latencies.append(max(0.0, arrived - sent))
        except (OSError, InvalidHandshake, TimeoutError, ConnectionClosed):
            stats.failed("WS /v1/feeds/live")
            await asyncio.sleep(1)


async def backlog(db_url: str) -> tuple[int, int]:
    """(open deliveries, delivered) in the ledger."""
    conn = await asyncpg.connect(db_url)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE status = ANY($1)) AS open,"
            " count(*) FILTER (WHERE status = 'delivered') AS delivered FROM delivery",
            list(OPEN),
        )
    finally:
        await conn.close()
    assert row is not None
    return int(row["open"]), int(row["delivered"])


async def sampler(
    db_url: str,
    procs: dict[str, int],
    stop: asyncio.Event,
    every: float,
    samples: list[dict[str, Any]],
    t0: float,
) -> None:
    while True:
        open_, delivered = await backlog(db_url)
        rss = {name: rss_kib(pid) for name, pid in procs.items()}
        at = round(time.monotonic() - t0)
        mib = round(sum(rss.values()) / 1024)
        samples.append({"t": at, "open": open_, "delivered": delivered, "rss_mib": mib})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
        if stop.is_set():
            return


async def run(args: argparse.Namespace) -> dict[str, Any]:
    scratch = LoadScratch(load_settings())
    try:
        scratch.migrate()
        settings = scratch.settings
        port = free_port()
        receiver = f"http://127.0.0.1:{port}"
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        key, cert = generate_signing_identity(scratch.folder / "xml", "load")
        services = build_services(settings)
        await start_services(services)
        try:
            await register_agencies(services, receiver, secret, key, cert)
            node_key = generate_key()
            node = await add_node(
                services.db,
                NodeCreate(
                    name="load-node",
                    public_key=public_key_pem(node_key),
                    # The node owns the cameras it posts for (ingest rejects others).
                    cameras=[
                        CameraCreate(camera_id="demo-cam-1", jurisdiction="north"),
                        CameraCreate(camera_id="demo-cam-2", jurisdiction="central"),
                    ],
                ),
                actor="bench",
            )
        finally:
            await stop_services(services)
        signer = RequestSigner(key_id=str(node.id), private_key=node_key)
        tokens = [scratch.token(name) for name in FEED_AGENCIES for _ in range(args.feed_clients)]
        live_tokens = [
            scratch.token(name) for name in FEED_AGENCIES for _ in range(args.subscribers)
        ]
        procs: dict[str, int] = {}
        agency = scratch.spawn(
            "demo-agency",
            "--port",
            str(port),
            "--secret-file",
            str(secret_file(scratch.folder, secret)),
            "--xml-cert",
            str(cert),
            log_name="agency",
        )
        procs["demo-agency"] = agency.pid
        api = scratch.spawn(
            "api",
            "--host",
            "127.0.0.1",
            "--port",
            str(scratch.api_port),
            "--workers",
            str(args.api_workers),
            log_name="api",
        )
        procs["api"] = api.pid
        for i in range(args.workers):
            procs[f"worker{i}"] = scratch.spawn("worker", log_name=f"worker{i}").pid
        base = settings.public_base_url
        await wait_ready(base, api)
        await asyncio.sleep(2.0)  # workers connect, load policy
        rss_idle = {name: rss_kib(pid) for name, pid in procs.items()}

        stats, stop, samples = Stats(), asyncio.Event(), []
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        log(
            f"mixed load for {args.duration} s: ingest {args.rate} events/s, "
            f"{len(tokens)} feed clients, {len(live_tokens)} live subscribers"
        )
        t0 = time.monotonic()
        async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:
            ws_url = base.replace("http://", "ws://") + "/v1/feeds/live"
            tasks = [
                asyncio.create_task(
                    sampler(
                        settings.database_url,
                        procs,
                        stop,
                        max(5.0, args.duration / 12),
                        samples,
                        t0,
                    )
                ),
                *(
                    asyncio.create_task(
                        ingest_load(
                            http, signer, base, stats, rate=args.rate / args.nodes, stop=stop
                        )
                    )
                    for _ in range(args.nodes)
                ),
                *(asyncio.create_task(feed_client(http, t, stats, stop)) for t in tokens),
                *(asyncio.create_task(subscriber(ws_url, t, stats, stop)) for t in live_tokens),
            ]
            # Memory baseline after a warm-up under load (pools, caches, WSDL, compiled
            # policy); the idle figure before the load is reported too.
            warmup = min(args.warmup, args.duration / 2)
            await asyncio.sleep(warmup)
            rss_warm = {name: rss_kib(pid) for name, pid in procs.items()}
            await asyncio.sleep(args.duration - warmup)
            elapsed = time.monotonic() - t0
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
        rss_end = {name: rss_kib(pid) for name, pid in procs.items()}
        log("load stopped; waiting for the delivery backlog to drain")
        for _ in range(120):
            if not (await backlog(settings.database_url))[0]:
                break
            await asyncio.sleep(1)
        drained_in = time.monotonic() - t0 - elapsed
        open_, delivered = await backlog(settings.database_url)
        async with httpx.AsyncClient(timeout=30) as client:
            inbox = (await client.get(f"{receiver}/_inbox/")).json()
        return report(
            args,
            stats,
            elapsed,
            samples,
            (rss_idle, rss_warm, rss_end),
            open_,
            delivered,
            drained_in,
            inbox,
        )
    finally:
        await scratch.close()


async def wait_ready(base: str, api: Any) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if api.poll() is not None:
                raise RuntimeError("hub api exited during start-up")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{base}/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError("hub api did not become ready")


def report(
    args: argparse.Namespace,
    stats: Stats,
    elapsed: float,
    samples: list[dict[str, Any]],
    rss: tuple[dict[str, int], dict[str, int], dict[str, int]],
    open_: int,
    delivered: int,
    drained_in: float,
    inbox: dict[str, Any],
) -> dict[str, Any]:
    routes = {}
    total = errors = 0
    for route in sorted({*stats.latencies, *stats.errors}):
        lat = stats.latencies.get(route, [])
        counts = stats.statuses.get(route, {})
        bad = sum(n for status, n in counts.items() if status >= 400) + stats.errors.get(route, 0)
        total += len(lat) + stats.errors.get(route, 0)
        errors += bad
        routes[route] = {
            "requests": len(lat),
            "per_s": round(len(lat) / elapsed, 1),
            "p50_ms": round(1000 * percentile(lat, 0.50), 1) if lat else None,
            "p99_ms": round(1000 * percentile(lat, 0.99), 1) if lat else None,
            "errors": bad,
            "statuses": {str(k): v for k, v in sorted(counts.items())},
        }
    rss_idle, rss_start, rss_end = rss
    memory = {
        name: {
            "idle_mib": round(rss_idle[name] / 1024, 1),
            "start_mib": round(rss_start[name] / 1024, 1),
            "end_mib": round(rss_end[name] / 1024, 1),
            "growth": round(rss_end[name] / rss_start[name] - 1, 3) if rss_start[name] else None,
        }
        for name in rss_start
    }
    return {
        "duration_s": round(elapsed, 1),
        "warmup_s": min(args.warmup, args.duration / 2),
        "offered_events_per_s": args.rate,
        "events_accepted": stats.events_accepted,
        "events_per_s": round(stats.events_accepted / elapsed, 1),
        "routes": routes,
        "error_rate": round(errors / total, 5) if total else 0.0,
        "feed_items": stats.feed_items,
        "live": {
            "messages": stats.live_messages,
            "p50_ms": round(1000 * percentile(stats.live_latencies, 0.5), 1),
            "p99_ms": round(1000 * percentile(stats.live_latencies, 0.99), 1),
            "reconnects_or_failures": stats.errors.get("WS /v1/feeds/live", 0),
        },
        "deliveries": {
            "delivered": delivered,
            "still_open": open_,
            "per_s_during_load": round((samples[-1]["delivered"] if samples else 0) / elapsed, 1),
            "drained_in_s": round(drained_in, 1),
            "receiver_unique": inbox["unique"],
            "receiver_duplicates": inbox["duplicates"],
        },
        "backlog": samples,
        "memory": memory,
        "memory_flagged": [
            n for n, m in memory.items() if (m["growth"] or 0) > MEMORY_GROWTH_LIMIT
        ],
    }


def render(r: dict[str, Any]) -> str:
    lines = [
        f"mixed load: {r['duration_s']} s, offered {r['offered_events_per_s']} events/s, "
        f"accepted {r['events_accepted']} ({r['events_per_s']}/s), "
        f"error rate {100 * r['error_rate']:.3f} %",
        f"  {'route':24} {'requests':>9} {'per s':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}",
    ]
    for route, v in r["routes"].items():
        lines.append(
            f"  {route:24} {v['requests']:>9} {v['per_s']:>7} {v['p50_ms']!s:>8} "
            f"{v['p99_ms']!s:>8} {v['errors']:>7}  {v['statuses']}"
        )
    live, d = r["live"], r["deliveries"]
    lines += [
        f"  feed items paged {r['feed_items']}; live messages {live['messages']} "
        f"(post answer -> message p50 {live['p50_ms']} ms, p99 {live['p99_ms']} ms, "
        f"reconnects {live['reconnects_or_failures']})",
        f"  deliveries: {d['delivered']} delivered ({d['per_s_during_load']}/s during load), "
        f"{d['still_open']} open, drained {d['drained_in_s']} s after the load; receiver "
        f"unique {d['receiver_unique']}, duplicates {d['receiver_duplicates']}",
        "  backlog over time (t s: open deliveries / delivered / RSS MiB of all processes):",
        "    "
        + "  ".join(f"{s['t']}:{s['open']}/{s['delivered']}/{s['rss_mib']}" for s in r["backlog"]),
        f"  memory (RSS with children, MiB): idle, start (after {r['warmup_s']} s of load)"
        " -> end (growth start -> end)",
    ]
    for name, m in r["memory"].items():
        flag = "  <-- GROWTH > 10 %" if name in r["memory_flagged"] else ""
        growth = "n/a" if m["growth"] is None else f"{100 * m['growth']:+.1f} %"
        lines.append(
            f"    {name:12} {m['idle_mib']:>8} {m['start_mib']:>8} -> {m['end_mib']:>8}"
            f"  ({growth}){flag}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=180, help="Seconds of load.")
    parser.add_argument(
        "--warmup", type=float, default=15, help="Seconds of load before the memory baseline."
    )
    parser.add_argument("--rate", type=float, default=200, help="Offered events per second.")
    parser.add_argument("--nodes", type=int, default=4, help="Concurrent ingest posters.")
    parser.add_argument("--feed-clients", type=int, default=2, help="Feed clients per agency.")
    parser.add_argument("--subscribers", type=int, default=2, help="Live subscribers per agency.")
    parser.add_argument("--workers", type=int, default=2, help="hub worker processes.")
    parser.add_argument("--api-workers", type=int, default=1, help="hub api processes.")
    parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    result = asyncio.run(run(args))
    print(json.dumps(result) if args.json else render(result))


if __name__ == "__main__":
    main()
