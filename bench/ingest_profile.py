"""Ingest CPU per batch, in-process: the real app driven over ASGI, no HTTP server or client.

`bench/ingest.py` measures the hub as deployed, but on a shared machine its rates and even its
CPU per batch swing with the other processes. This drives `POST /v1/edge/events` of the real
app (guard, signatures, policy, PII vault, planner, feeds, audit) in this process with
pre-signed batches from `--clients` concurrent tasks, and reads the CPU this process and this
run's PostgreSQL sessions used per batch, so two versions can be compared minutes apart.
`--profile` adds cProfile's top functions by CPU time (cumulative and own; the profiler
itself about doubles the API's CPU, so read it for where the time goes, not how much).

    .venv/bin/python bench/ingest_profile.py --requests 1000 [--clients 4] [--profile]
    .venv/bin/python bench/ingest_profile.py --requests 500 --clients 1 --per-request

Scratch database, Redis prefix and edge node as in `bench/ingest.py`, removed afterwards.
"""

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import (  # a sibling script, not a package
    CLK_TCK,
    EVENTS_PATH,
    BodySource,
    LoadPlan,
    ProcSample,
    Scratch,
    backend_cpu_ns,
    other_database,
    sample_cpu,
)

from hub.app import create_app
from hub.settings import load_settings

BASE = "http://bench.local"
Message = dict[str, Any]
App = Callable[..., Awaitable[None]]  # an ASGI application
T = TypeVar("T")


async def post(app: App, body: bytes, headers: dict[str, str]) -> int:
    """One POST of a batch through the ASGI app; its status."""
    status, _ = await call(app, "POST", EVENTS_PATH, body=body, headers=headers)
    return status


async def call(
    app: App,
    method: str,
    path: str,
    *,
    body: bytes = b"",
    headers: dict[str, str],
    query: bytes = b"",
) -> tuple[int, bytes]:
    """One request through the ASGI app; its status and body."""
    raw = [(b"host", b"bench.local"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope: Message = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(),
        "query_string": query, "root_path": "", "headers": raw, "client": ("127.0.0.1", 5555),
        "server": ("bench.local", 80), "state": {},
    }  # fmt: skip
    sent = asyncio.Event()
    status = 0
    chunks: list[bytes] = []

    async def receive() -> Message:
        if not sent.is_set():
            sent.set()
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # never disconnects
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def lifespan(app: App, started: asyncio.Event, stop: asyncio.Event) -> None:
    """Run the app's lifespan until `stop` is set."""
    startup = [{"type": "lifespan.startup"}]

    async def receive() -> Message:
        if startup:
            return startup.pop()
        await stop.wait()
        return {"type": "lifespan.shutdown"}

    async def send(message: Message) -> None:
        if message["type"] == "lifespan.startup.failed":
            raise RuntimeError(str(message.get("message")))
        if message["type"] == "lifespan.startup.complete":
            started.set()

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)


async def drive(
    app: App,
    bodies: list[tuple[bytes, dict[str, str]]],
    clients: int,
    cpu: list[float] | None = None,
) -> list[float]:
    """Send every body once from `clients` concurrent tasks; latencies in ms. With `cpu` (one
    client only: no other request runs meanwhile), each request's thread CPU time in ms."""
    pending: Iterator[tuple[bytes, dict[str, str]]] = iter(bodies)
    latencies: list[float] = []

    async def client() -> None:
        for body, headers in pending:
            started, used = time.perf_counter(), time.thread_time()
            status = await post(app, body, headers)
            latencies.append((time.perf_counter() - started) * 1000)
            if cpu is not None:
                cpu.append((time.thread_time() - used) * 1000)
            if status != 200:
                raise RuntimeError(f"POST {EVENTS_PATH} answered {status}")

    await asyncio.gather(*(client() for _ in range(clients)))
    return sorted(latencies)


def print_request_cpu(cpu: list[float]) -> None:
    """Quartiles of per-request API CPU: the low ones move least with other processes."""
    ordered = sorted(cpu)
    n = len(ordered)
    p10, p25, p50 = (ordered[min(n - 1, int(n * q))] for q in (0.1, 0.25, 0.5))
    print(f"  API per request p10 {p10:.2f}, p25 {p25:.2f}, p50 {p50:.2f} ms CPU (one client)")


def postgres_ticks(sample: ProcSample, database: str) -> int:
    """CPU ticks of the PostgreSQL sessions of `database` (not the server's own processes)."""
    return sum(
        ticks
        for pid, (comm, _, ticks) in sample.procs.items()
        if comm.startswith("postgres")
        and database in sample.titles.get(pid, "").replace("\x00", " ").split()
        and not other_database(sample.titles.get(pid, ""), database)
    )


class StatementCosts:
    """PostgreSQL CPU per statement kind, read from each backend's /proc/<pid>/schedstat (ns
    on CPU) around every statement a pooled connection runs; the pool's resets included."""

    def __init__(self) -> None:
        self.costs: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
        self._original = asyncpg.connection.Connection._execute
        self._simple = asyncpg.connection.Connection.execute

    def install(self) -> None:
        """Wrap asyncpg's statement entry points (every statement passes one of them)."""
        costs, original, simple = self.costs, self._original, self._simple
        inside: set[int] = set()  # connections inside a timed call (execute calls _execute)

        async def timed(runner: Any, conn: Any, query: str, *args: Any, **kw: Any) -> Any:
            if id(conn) in inside:
                return await runner(conn, query, *args, **kw)
            inside.add(id(conn))
            cpu, wall = backend_cpu_ns(conn), time.perf_counter()
            try:
                return await runner(conn, query, *args, **kw)
            finally:
                inside.discard(id(conn))
                entry = costs[" ".join(query.split())[:70]]
                entry[0] += 1
                entry[1] += (backend_cpu_ns(conn) - cpu) / 1e6
                entry[2] += (time.perf_counter() - wall) * 1000

        async def execute(conn: Any, query: str, *args: Any, **kw: Any) -> Any:
            return await timed(simple, conn, query, *args, **kw)

        async def _execute(conn: Any, query: str, *args: Any, **kw: Any) -> Any:
            return await timed(original, conn, query, *args, **kw)

        asyncpg.connection.Connection.execute = execute  # type: ignore[method-assign]
        asyncpg.connection.Connection._execute = _execute  # type: ignore[method-assign]

    def uninstall(self) -> None:
        """Put asyncpg's own methods back."""
        asyncpg.connection.Connection.execute = self._simple  # type: ignore[method-assign]
        asyncpg.connection.Connection._execute = self._original  # type: ignore[method-assign]

    def reset(self) -> None:
        """Forget what the warm-up ran."""
        self.costs.clear()

    def print(self, batches: int, unit: str = "batch") -> None:
        """Per batch (or other `unit`): how many of each statement, its backend CPU and its
        wall time, in ms."""
        print(f"  statements per {unit}: count, PostgreSQL CPU ms, wall ms (backend schedstat)")
        rows = sorted(self.costs.items(), key=lambda kv: -kv[1][1])
        for query, (count, cpu, wall) in rows:
            print(f"    {count / batches:5.2f} {cpu / batches:6.3f} {wall / batches:6.3f}  {query}")
        total = sum(c[1] for c in self.costs.values())
        print(f"    total PostgreSQL CPU in statements {total / batches:.2f} ms per {unit}")


class Window:
    """What one timed stretch cost: wall seconds, this process's CPU (user, system), this
    run's PostgreSQL sessions' CPU (ms), and cProfile's statistics when asked for."""

    def __init__(self, database: str, *, profile: bool) -> None:
        self._database = database
        # Timed by thread CPU time: a wall clock charges a send() to whoever the kernel
        # preempted.
        self.profile = cProfile.Profile(time.thread_time) if profile else None
        self.wall = self.user_ms = self.system_ms = self.pg_ms = 0.0

    async def measure(self, work: Awaitable[T]) -> T:
        """Run `work`, timed."""
        pg_before = postgres_ticks(sample_cpu(), self._database)
        before, wall = os.times(), time.time()
        if self.profile is not None:
            self.profile.enable()
        try:
            return await work
        finally:
            if self.profile is not None:
                self.profile.disable()
            after = os.times()
            self.wall = time.time() - wall
            self.pg_ms = (postgres_ticks(sample_cpu(), self._database) - pg_before) / CLK_TCK * 1000
            self.user_ms = (after.user - before.user) * 1000
            self.system_ms = (after.system - before.system) * 1000

    def print(self, n: int, unit: str, latencies: list[float]) -> None:
        """CPU per `unit` (n of them) and the latency percentiles (sorted, in ms)."""
        split = f"user {self.user_ms / n:.2f}, system {self.system_ms / n:.2f}"
        api = (self.user_ms + self.system_ms) / n
        print(f"  API process   {api:.2f} ms CPU per {unit} ({split})")
        print(f"  PostgreSQL    {self.pg_ms / n:.2f} ms CPU per {unit} (this run's sessions)")
        p50, p99 = latencies[n // 2], latencies[min(n - 1, int(n * 0.99))]
        print(f"  latency       p50 {p50:.1f} ms, p99 {p99:.1f} ms")

    def print_profile(self, top: int, *, dump: str | None = None) -> None:
        """cProfile's top functions, by cumulative and by own time (with `profile` only)."""
        if self.profile is None:
            return
        stats = pstats.Stats(self.profile, stream=sys.stdout)
        stats.sort_stats("cumulative").print_stats(top)
        stats.sort_stats("tottime").print_stats(top)
        if dump:
            stats.dump_stats(dump)


async def measured(work: Awaitable[T], *, database: str, profile: bool) -> tuple[T, Window]:
    """`work`'s result and what it cost."""
    window = Window(database, profile=profile)
    return await window.measure(work), window


async def measure(args: argparse.Namespace, scratch: Scratch, key_id: str, key_pem: bytes) -> None:
    """Warm up, then time `--requests` batches and print CPU per batch."""
    settings = msgspec.structs.replace(
        load_settings(),
        database_url=scratch.database_url,
        redis_prefix=scratch.redis_prefix,
        media_dir=str(scratch.folder / "media"),
        public_base_url=BASE,
        ratelimit_enabled=False,
        log_level="warning",
    )
    app: App = create_app(settings)
    started, stop = asyncio.Event(), asyncio.Event()
    life = asyncio.create_task(lifespan(app, started, stop))
    await started.wait()
    plan = LoadPlan(
        index=0, clients=args.clients, base_url=BASE, key_id=key_id, key_pem=key_pem,
        batch=args.batch, warmup=0, duration=0, presigned=0,
    )  # fmt: skip
    source = BodySource(plan)
    statements = StatementCosts() if args.statements else None
    if statements is not None:
        statements.install()
    await drive(app, [source.take() for _ in range(args.warm)], args.clients)
    if statements is not None:
        statements.reset()
    bodies = [source.take() for _ in range(args.requests)]
    database = scratch.database_url.rsplit("/", 1)[1]
    cpu: list[float] | None = [] if args.per_request else None
    latencies, window = await measured(
        drive(app, bodies, args.clients, cpu), database=database, profile=args.profile
    )
    n = args.requests
    print(f"{n} batches of {args.batch} from {args.clients} clients in {window.wall:.1f} s")
    window.print(n, "batch", latencies)
    if cpu:
        print_request_cpu(cpu)
    if statements is not None:
        statements.print(n)
        statements.uninstall()
    window.print_profile(args.top, dump=args.dump)
    stop.set()
    await life


def add_profiler_options(parser: argparse.ArgumentParser, timed: str) -> None:
    """--profile, --top and --statements, as both in-process profilers take them."""
    parser.add_argument("--profile", action="store_true", help=f"cProfile the timed {timed}")
    parser.add_argument("--top", type=int, default=40, help="functions shown with --profile")
    parser.add_argument(
        "--statements", action="store_true", help="PostgreSQL CPU and wall time per statement"
    )


def main() -> None:
    """Parse options, make the scratch resources, measure, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="timed batches")
    parser.add_argument("--warm", type=int, default=50, help="batches before timing")
    parser.add_argument("--clients", type=int, default=4, help="concurrent requests")
    parser.add_argument("--batch", type=int, default=100, help="events per batch")
    add_profiler_options(parser, "batches")
    parser.add_argument("--dump", help="with --profile, also write the pstats file here")
    parser.add_argument(
        "--per-request",
        action="store_true",
        help="quartiles of each request's API CPU (needs --clients 1)",
    )
    args = parser.parse_args()
    if args.per_request and args.clients != 1:
        parser.error("--per-request times one request at a time: use it with --clients 1")
    scratch = Scratch(settings=load_settings())
    try:
        scratch.hub("migrate")
        key_id, key_pem = scratch.add_node()
        asyncio.run(measure(args, scratch, key_id, key_pem))
    finally:
        scratch.close()


if __name__ == "__main__":
    main()
