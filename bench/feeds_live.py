"""Live feed fan-out: CPU per event delivered to N subscribers, in one process.

Runs against scratch resources removed afterwards (bench/feeds.py's `Scratch`: a database
`hub_bench_<random>`, Redis keys under `bench:<random>:`). `--events` events are COPYed in
and given feed positions (one in ten from the north camera: police-north may see 10 %,
transit-authority and city-analytics 90 %). `--subscribers` subscribers, spread over the three
demo agencies, join this process's live hub directly (no sockets: the figure is the fan-out's
release work, not the WebSocket send); the hub then drains every position once, as it does
when positions are announced, the decision log is flushed and each queued message is turned
into its text frame as the socket sender does. CPU is this process's (`time.process_time`)
and PostgreSQL's (from /proc, sessions of other databases left out), per event drained and
per message delivered (one event queued on one subscriber). Queues are unbounded here, so no
subscriber is dropped. Run from the repository root (the default bundle is read from
`policies/`):

    .venv/bin/python bench/feeds_live.py --events 5000 --subscribers 30
"""

import argparse
import asyncio
import os
import sys
import time
from typing import Any

import msgspec
from feeds import AGENCIES, CpuWindow, Scratch, log, seed  # bench/feeds.py: the same parts

from hub.feeds.live import Subscriber
from hub.feeds.schemas import FeedFilters
from hub.feeds.service import Reader, resolve_reader
from hub.identity.schemas import Subject
from hub.runtime import (
    Services,
    build_services,
    start_policy,
    start_services,
    stop_policy,
    stop_services,
)
from hub.settings import load_settings

_ENCODER = msgspec.json.Encoder()


def subject(agency: str, index: int) -> Subject:
    """An agency client as the demo tokens describe it."""
    jurisdictions, clearance, purpose = AGENCIES[agency]
    return Subject(
        id=f"bench-live-{index}", kind="client", roles=["agency"], agency=agency,
        jurisdictions=jurisdictions, clearance=clearance, purpose=purpose,
    )  # fmt: skip


async def subscribe(services: Services, count: int) -> list[Subscriber]:
    """`count` subscribers over the three agencies, with unbounded queues."""
    names = list(AGENCIES)
    subscribers = []
    for i in range(count):
        reader: Reader = await resolve_reader(
            services.feeds, subject(names[i % 3], i), decision_id=None
        )
        subscriber = await services.feeds.live.subscribe(reader, FeedFilters())
        subscriber.buffer = sys.maxsize  # measure release work, never a drop
        subscribers.append(subscriber)
    return subscribers


def frames(subscriber: Subscriber) -> int:
    """Empty a subscriber's queue into text frames as the socket's sender does (a message
    queued as a struct is encoded per subscriber; one queued as text is sent as it is)."""
    sent = 0
    while not subscriber.queue.empty():
        message: Any = subscriber.queue.get_nowait()
        if message is not None:
            text = message if isinstance(message, str) else _ENCODER.encode(message).decode()
            sent += bool(text)
    return sent


async def measure(services: Services, scratch: Scratch, subscribers: int) -> dict[str, Any]:
    """Drain every position once to the subscribers; CPU and what they got."""
    live = services.feeds.live
    joined = await subscribe(services, subscribers)
    live._watermark = 0  # replay the whole feed as if just announced
    window = CpuWindow(os.getpid(), f"hub_bench_{scratch.tag}")
    window.start()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await live._drain()  # the fan-out itself, without waiting for a notice
    await services.decisions.wait_flushed()
    delivered = sum(frames(s) for s in joined)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    split = window.stop()
    drained = live._watermark
    async with services.db.transaction() as conn:
        decisions = await conn.fetchval("SELECT count(*) FROM policy_decisions")
    pg = split["percent_of_one_core"]["postgres"] / 100 * split["seconds"]
    return {
        "events": drained,
        "subscribers": subscribers,
        "delivered": delivered,
        "decision_records": int(decisions),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 3),
        "postgres_cpu_s": round(pg, 3),
        "cpu_us_per_delivered": round(1e6 * cpu / max(1, delivered), 1),
        "cpu_us_per_event": round(1e6 * cpu / max(1, drained), 1),
        "postgres_us_per_event": round(1e6 * pg / max(1, drained), 1),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up, measure, tear down."""
    scratch = Scratch()
    try:
        log(f"scratch database hub_bench_{scratch.tag}; migrating")
        scratch.hub("migrate")
        await seed(scratch, args.events)
        os.environ.update(scratch.env())
        settings = load_settings()
        services = build_services(settings)
        await start_services(services)
        watcher = await start_policy(services, role="bench")
        try:
            return await measure(services, scratch, args.subscribers)
        finally:
            await stop_policy(services, watcher)
            await stop_services(services)
    finally:
        await scratch.close()


def main() -> None:
    """Parse arguments, run, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000, help="events in the feed")
    parser.add_argument("--subscribers", type=int, default=30, help="live subscribers")
    report = asyncio.run(run(parser.parse_args()))
    print(msgspec.json.format(msgspec.json.encode(report)).decode())


if __name__ == "__main__":
    main()
