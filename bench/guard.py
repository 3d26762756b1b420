"""What the policy guard adds to one HTTP request: the same trivial handler served twice by a
Litestar app with the hub's real guard, services and default bundle, once on a public route
and once on a guarded one (bearer token -> subject -> hub/authz/decision -> decision log).

    .venv/bin/python bench/guard.py [--requests 3000] [--json]

It makes a scratch database (migrated with `hub migrate`) and a Redis prefix, and removes both.
"""

import argparse
import asyncio
import logging
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar, get
from litestar.datastructures import State
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from hub.identity.tokens import TokenEntry, append_token, new_token, token_hash
from hub.kit.db import drop_database, with_database
from hub.kit.problems import EXCEPTION_HANDLERS
from hub.policy.guard import policy_guard
from hub.runtime import (
    build_services,
    start_policy,
    start_services,
    stop_policy,
    stop_services,
)
from hub.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]


@get("/healthz", opt={"public": True}, sync_to_thread=False)
def open_route() -> dict[str, str]:
    """Public: the guard returns at once."""
    return {"status": "ok"}


@get("/metrics", sync_to_thread=False)
def guarded_route() -> dict[str, str]:
    """Guarded: the default bundle lets operators and admins read it."""
    return {"status": "ok"}


def bench_app(settings: Settings) -> Litestar:
    """The hub's guard and services around two trivial handlers."""
    services = build_services(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await start_services(services)
        watcher = await start_policy(services, role="bench")
        try:
            yield
        finally:
            await stop_policy(services, watcher)
            await stop_services(services)

    return Litestar(
        [open_route, guarded_route],
        guards=[policy_guard],
        lifespan=[lifespan],
        state=State({"guard_deps": services}),
        exception_handlers=EXCEPTION_HANDLERS,
    )


async def timed(
    client: AsyncTestClient[Litestar], path: str, headers: dict[str, str], n: int
) -> list[float]:
    """Latencies (µs) of n sequential requests; every answer must be 200."""
    samples: list[float] = []
    for _ in range(n):
        start = time.perf_counter_ns()
        response = await client.get(path, headers=headers)
        samples.append((time.perf_counter_ns() - start) / 1000)
        if response.status_code != 200:
            raise SystemExit(f"bench: {path} answered {response.status_code}: {response.text}")
    return sorted(samples)


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values."""
    return values[min(len(values) - 1, int(q * len(values)))]


async def measure(settings: Settings, n: int) -> dict[str, Any]:
    """Warm up, then time the open and the guarded route alternately in blocks."""
    admin = {"Authorization": f"Bearer {issue_admin_token(Path(settings.api_tokens_file))}"}
    async with AsyncTestClient(app=bench_app(settings)) as client:
        await timed(client, "/metrics", admin, 200)
        await timed(client, "/healthz", {}, 200)
        open_us = await timed(client, "/healthz", {}, n)
        guarded_us = await timed(client, "/metrics", admin, n)
    figures = {
        name: {"p50_us": pct(v, 0.5), "p99_us": pct(v, 0.99), "per_s": 1e6 / (sum(v) / len(v))}
        for name, v in (("open", open_us), ("guarded", guarded_us))
    }
    figures["overhead"] = {
        "p50_us": figures["guarded"]["p50_us"] - figures["open"]["p50_us"],
        "p99_us": figures["guarded"]["p99_us"] - figures["open"]["p99_us"],
    }
    return figures


def issue_admin_token(path: Path) -> str:
    """A bearer token for an operator (may read /metrics; static admin tokens need a second
    factor), written (as its hash) to the bench's token file."""
    token = new_token()
    entry = msgspec.convert(
        {"sha256": token_hash(token), "subject": "bench", "roles": ["operator"]}, TokenEntry
    )
    append_token(path, entry)
    return token


def scratch_settings(base: Settings, folder: Path) -> Settings:
    """Settings for a scratch database, Redis prefix and token file."""
    tag = uuid.uuid4().hex[:8]
    return msgspec.structs.replace(
        base,
        database_url=with_database(base.database_url, f"hub_bench_{tag}"),
        redis_prefix=f"bench:{tag}:",
        api_tokens_file=str(folder / "tokens.toml"),
        policy_dir=str(ROOT / "policies"),
        log_level="warning",
    )


async def delete_keys(settings: Settings) -> None:
    """Remove every Redis key under the bench's prefix."""
    redis = Redis.from_url(settings.redis_url)
    try:
        keys = [k async for k in redis.scan_iter(match=f"{settings.redis_prefix}*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per route")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    with tempfile.TemporaryDirectory() as folder:
        settings = scratch_settings(load_settings(), Path(folder))
        env = {**os.environ, "HUB_DATABASE_URL": settings.database_url}
        subprocess.run(
            [sys.executable, "-m", "hub.cli.main", "migrate"],
            env=env,
            check=True,
            capture_output=True,
        )
        try:
            figures = asyncio.run(measure(settings, args.requests))
        finally:
            asyncio.run(drop_database(settings.database_url))
            asyncio.run(delete_keys(settings))
    print_figures(figures, as_json=args.json, n=args.requests)


def print_figures(figures: dict[str, Any], *, as_json: bool, n: int) -> None:
    """One JSON object, or a small table."""
    if as_json:
        print(msgspec.json.encode(figures).decode())
        return
    print(f"policy guard through HTTP (in-process ASGI client, {n} sequential requests each)")
    for name in ("open", "guarded"):
        f = figures[name]
        print(
            f"  {name:8} p50 {f['p50_us']:8.1f} µs  p99 {f['p99_us']:8.1f} µs  {f['per_s']:8.0f}/s"
        )
    o = figures["overhead"]
    verdict = "met" if o["p50_us"] < 1000 else "missed"
    print(
        f"  guard overhead: p50 {o['p50_us']:.1f} µs, p99 {o['p99_us']:.1f} µs "
        f"(goal: below 1 ms per request: {verdict})"
    )


if __name__ == "__main__":
    main()
