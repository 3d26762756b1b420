"""Feed page CPU, in-process: the real app driven over ASGI, no HTTP server or client.

`bench/feeds.py` measures the hub as deployed, but on a shared machine its rates and even
its CPU per page swing by a third between runs. This seeds the same feed (events stored as
ingest stores them, attributes sealed in the PII vault), then asks `GET /v1/feeds/events`
of the real app (authentication, guard, page gate, offers, hydration, release, audit) from
`--clients` concurrent readers of the three bench agencies in this process, and reads the
CPU this process and this run's PostgreSQL sessions used per page, so two versions of the
page path can be compared minutes apart. `--statements` adds PostgreSQL CPU per statement,
`--profile` cProfile's top functions (the profiler about doubles the CPU: read it for where
the time goes, not how much).

    .venv/bin/python bench/feeds_profile.py --events 20000 --pages 1000 [--clients 4]

Scratch database, Redis prefix, tokens and keys as in `bench/feeds.py`, removed afterwards.
"""

import argparse
import asyncio
import itertools
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _feedkit import AGENCIES, FEED_PATH, PAGE_LIMIT  # sibling scripts, not a package
from feeds import Scratch, log, seed
from ingest_profile import (
    App,
    StatementCosts,
    add_profiler_options,
    call,
    lifespan,
    measured,
)

from hub.app import create_app
from hub.settings import load_settings


class _Page(msgspec.Struct):
    items: list[msgspec.Raw]
    next_cursor: str
    has_more: bool


_DECODE = msgspec.json.Decoder(_Page)


class Readers:
    """Readers walking their agency's feed round and round; each page counted once."""

    def __init__(self, app: App, tokens: list[str], pages: int) -> None:
        self._app = app
        self._tokens = tokens
        self._left = itertools.count()
        self._pages = pages
        self.latencies: list[float] = []
        self.items = 0

    async def run(self, clients: int) -> None:
        """Ask `pages` pages in all from `clients` concurrent readers."""
        await asyncio.gather(
            *(self._reader(self._tokens[i % len(self._tokens)]) for i in range(clients))
        )

    async def _reader(self, token: str) -> None:
        cursor: str | None = None
        headers = {"authorization": f"Bearer {token}"}
        while next(self._left) < self._pages:
            query: dict[str, Any] = {"limit": PAGE_LIMIT}
            if cursor:
                query["cursor"] = cursor
            started = time.perf_counter()
            status, body = await call(
                self._app, "GET", FEED_PATH, headers=headers, query=urlencode(query).encode()
            )
            self.latencies.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise RuntimeError(f"GET {FEED_PATH} answered {status}: {body[:300]!r}")
            page = _DECODE.decode(body)
            self.items += len(page.items)
            cursor = page.next_cursor if page.has_more else None  # round again


async def measure(args: argparse.Namespace, scratch: Scratch) -> None:
    """Seed, warm up, then time `--pages` pages and print CPU per page."""
    log(f"seeding {args.events} events")
    await seed(scratch, args.events)
    os.environ.update(scratch.env())  # the app reads every HUB_* setting the API would
    app: App = create_app(load_settings())
    started, stop = asyncio.Event(), asyncio.Event()
    life = asyncio.create_task(lifespan(app, started, stop))
    await started.wait()
    tokens = [scratch.token(name) for name in AGENCIES]
    statements = StatementCosts() if args.statements else None
    if statements is not None:
        statements.install()
    await Readers(app, tokens, args.warm).run(args.clients)
    if statements is not None:
        statements.reset()
    readers = Readers(app, tokens, args.pages)
    database = scratch.database_url.rsplit("/", 1)[1]
    _, window = await measured(readers.run(args.clients), database=database, profile=args.profile)
    n = args.pages
    each = readers.items / n
    print(f"{n} pages ({each:.1f} items each) from {args.clients} readers in {window.wall:.1f} s")
    window.print(n, "page", sorted(readers.latencies))
    if statements is not None:
        statements.print(n, "page")
        statements.uninstall()
    window.print_profile(args.top)
    stop.set()
    await life


def main() -> None:
    """Parse options, make the scratch resources, measure, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events in the feed")
    parser.add_argument("--pages", type=int, default=1000, help="timed pages")
    parser.add_argument("--warm", type=int, default=60, help="pages before timing")
    parser.add_argument("--clients", type=int, default=4, help="concurrent readers")
    add_profiler_options(parser, "pages")
    args = parser.parse_args()
    scratch = Scratch()
    try:
        log(f"scratch database hub_bench_{scratch.tag}; migrating")
        scratch.hub("migrate")
        asyncio.run(measure(args, scratch))
    finally:
        asyncio.run(scratch.close())


if __name__ == "__main__":
    main()
