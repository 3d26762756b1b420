"""The events INSERT alone: client and PostgreSQL CPU per 100-event batch, by partitions.

`bench/ingest_profile.py` measures a whole request; a change to the one statement that stores a
batch moves its figures by less than the machine's drift between two runs. This calls
`hub.ingest.repository.insert_events` directly on one connection, each batch in a transaction
that is rolled back, and reads this process's CPU (`time.process_time`) and the session's
backend CPU (`/proc/<pid>/schedstat`) around each call. With `--against DIR` (another checkout
of the hub) the two versions' statements run alternately in this one process, batch set by
batch set, so drift falls on both alike, and the medians of their ratios are printed.

`--past-months N` first fills N monthly partitions before the current one with events of the
same node, so the cost of finding re-sent ids across partitions shows (a year of retention
means ~16 partitions; the scratch database has 5).

`--variant NAME` tries a schema change without a migration: `--up` SQL is run before each of
the variant's batch sets and `--down` SQL after it (so an index dropped in `--up` is built
again in `--down`), and `--replace OLD NEW` edits the variant's copy of the statement (a cast
that follows a column's new type). Both sides warm their plans on two batches before each set.

    .venv/bin/python bench/ingest_insert.py --rounds 30 [--past-months 11] \
        [--against /tmp/base] [--json]
    .venv/bin/python bench/ingest_insert.py --rounds 8 --variant without-camera-index \
        --up 'DROP INDEX detection_event_camera_idx' \
        --down 'CREATE INDEX detection_event_camera_idx ON detection_event (camera_id, captured_at)'

Scratch database as in `bench/ingest.py`, removed afterwards.
"""

import argparse
import asyncio
import importlib.util
import json
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import EventMaker, Scratch, backend_cpu_ns, log  # a sibling script, not a package

from hub.contracts.detection_v1 import EventBatch
from hub.ingest import repository
from hub.ingest.partitions import month_start, partition_name
from hub.ingest.rules import PreparedEvent, prepare
from hub.media import EventRegions, event_regions
from hub.settings import load_settings

BATCH = 100
SETS = 20  # batches per version per round
FILL_PER_MONTH = 30  # batches stored in each past month's partition
FILL_NOW = 300  # batches stored in the current month's partition before timing

Batch = tuple[list[PreparedEvent], EventRegions]


def load_repository(checkout: Path) -> ModuleType:
    """Another checkout's `hub.ingest.repository`, beside this one's (its own imports resolve
    to this checkout's hub: only the statement and its parameters differ)."""
    path = checkout / "hub" / "ingest" / "repository.py"
    spec = importlib.util.spec_from_file_location("against_repository", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"no repository module at {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True, slots=True)
class Version:
    """One side of the comparison: the statement's module and the schema change around it."""

    module: Any
    up: str = ""  # SQL run before each of this side's batch sets
    down: str = ""  # SQL run after it


def variant_repository(old: str, new: str) -> ModuleType:
    """A second copy of this checkout's `hub.ingest.repository`, its statement edited."""
    module = load_repository(Path(__file__).resolve().parent.parent)
    edited = module._INSERT_EVENTS.replace(old, new)
    if old and edited == module._INSERT_EVENTS:
        raise SystemExit(f"--replace: {old!r} is not in the events INSERT")
    module._INSERT_EVENTS = edited
    module._insert_events_sql.cache_clear()
    return module


def make_batch(maker: EventMaker, node_id: uuid.UUID, now: datetime) -> Batch:
    """A batch of fresh events captured shortly before `now`, prepared as ingest does."""
    body = msgspec.json.encode({"events": [maker.event(now) for _ in range(BATCH)]})
    events = msgspec.json.decode(body, type=EventBatch).events
    ordered = sorted(
        (prepare(e, jurisdiction="eu") for e in events), key=lambda p: p.event.event_id.int
    )
    return ordered, event_regions([p.event for p in ordered], node_id=node_id)


async def store(conn: asyncpg.Connection, node_id: uuid.UUID, batch: Batch) -> None:
    """Store a batch for good (filling partitions)."""
    events, regions = batch
    await repository.insert_events(
        conn, node_id=node_id, events=events, quarantined=set(), regions=regions, strip_pii=True
    )


async def fill(conn: asyncpg.Connection, node_id: uuid.UUID, past_months: int) -> None:
    """Past months' partitions with events of this node, then the current one; statistics."""
    maker = EventMaker(11)
    today = datetime.now(UTC).date()
    for back in range(1, past_months + 1):
        month, after = month_start(today, -back), month_start(today, 1 - back)
        low, high = (datetime(m.year, m.month, 1, tzinfo=UTC).isoformat() for m in (month, after))
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {partition_name(month)} PARTITION OF detection_event "
            f"FOR VALUES FROM ('{low}') TO ('{high}')"
        )
        middle = datetime(month.year, month.month, 11, tzinfo=UTC)
        for _ in range(FILL_PER_MONTH):
            await store(conn, node_id, make_batch(maker, node_id, middle))
    for _ in range(FILL_NOW):
        await store(conn, node_id, make_batch(maker, node_id, datetime.now(UTC)))
    await conn.execute("ANALYZE detection_event")


async def time_set(
    conn: asyncpg.Connection, module: Any, node_id: uuid.UUID, batches: list[Batch]
) -> tuple[float, float]:
    """Client and backend CPU (ms) per batch for one version over the batch set."""
    client = server = 0.0
    for events, regions in batches:
        transaction = conn.transaction()
        await transaction.start()
        backend = backend_cpu_ns(conn)
        started = time.process_time()
        stored = await module.insert_events(
            conn, node_id=node_id, events=events, quarantined=set(), regions=regions,
            strip_pii=True,
        )  # fmt: skip
        client += time.process_time() - started
        server += (backend_cpu_ns(conn) - backend) / 1e6
        await transaction.rollback()
        if len(stored.rows) != len(events):
            raise SystemExit(f"{module.__name__} stored {len(stored.rows)} of {len(events)}")
    return client * 1e3 / len(batches), server / len(batches)


async def time_version(
    conn: asyncpg.Connection, version: Version, node_id: uuid.UUID, batches: list[Batch]
) -> tuple[float, float]:
    """`time_set` inside the version's schema change. Plans are warmed first on either side:
    a variant's DDL drops the cached plans of the side timed after it as well."""
    if version.up:
        await conn.execute(version.up)
    try:
        await time_set(conn, version.module, node_id, batches[:2])
        return await time_set(conn, version.module, node_id, batches)
    finally:
        if version.down:
            await conn.execute(version.down)


async def measure(args: argparse.Namespace, url: str) -> dict[str, Any]:
    """Fill, then time the versions alternately; the report."""
    conn = await asyncpg.connect(url)
    try:
        node_id = uuid.uuid4()
        log(f"filling: {args.past_months} past month(s) x {FILL_PER_MONTH} batches, "
            f"{FILL_NOW} batches this month")  # fmt: skip
        await fill(conn, node_id, args.past_months)
        partitions = await conn.fetchval(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'detection_event'::regclass"
        )
        maker = EventMaker(7)
        batches = [make_batch(maker, node_id, datetime.now(UTC)) for _ in range(SETS)]
        versions = {"this": Version(repository)}
        if args.against:
            versions["against"] = Version(load_repository(Path(args.against)))
        if args.variant:
            old, new = args.replace or ("", "")
            versions["against"] = Version(variant_repository(old, new), args.up, args.down)
        figures: dict[str, tuple[list[float], list[float]]] = {v: ([], []) for v in versions}
        for round_ in range(args.rounds):
            log(f"round {round_ + 1} of {args.rounds}")
            order = list(versions) if round_ % 2 == 0 else list(reversed(versions))
            for name in order:
                client, server = await time_version(conn, versions[name], node_id, batches)
                figures[name][0].append(client)
                figures[name][1].append(server)
    finally:
        await conn.close()
    return report(args, partitions, figures)


def report(
    args: argparse.Namespace, partitions: int, figures: dict[str, tuple[list[float], list[float]]]
) -> dict[str, Any]:
    """Medians per version and, with `--against`, the medians of the rounds' ratios."""
    result: dict[str, Any] = {
        "partitions": partitions,
        "rounds": args.rounds,
        "batches_per_round": SETS,
        "batch": BATCH,
        "ms_per_batch": {
            name: {
                "client": round(statistics.median(c), 3),
                "postgres": round(statistics.median(s), 3),
            }
            for name, (c, s) in figures.items()
        },
    }
    if args.variant:
        result["variant"] = {
            "name": args.variant, "up": args.up, "down": args.down, "replace": args.replace,
        }  # fmt: skip
    if "against" in figures:
        this, against = figures["this"], figures["against"]
        result["this_over_against"] = {
            side: round(
                statistics.median(a / b for a, b in zip(this[i], against[i], strict=True)), 3
            )
            for i, side in enumerate(("client", "postgres"))
        }
    return result


def render(result: dict[str, Any]) -> str:
    """The report as text."""
    lines = [
        f"{result['partitions']} partitions, {result['rounds']} rounds of "
        f"{result['batches_per_round']} batches of {result['batch']}"
    ]
    for name, ms in result["ms_per_batch"].items():
        lines.append(f"  {name:8} client {ms['client']:.3f} ms, PostgreSQL {ms['postgres']:.3f} ms"
                     " per batch (medians)")  # fmt: skip
    if "variant" in result:
        lines.append(
            f"  against = variant {result['variant']['name']!r} (this = the schema as migrated)"
        )
    ratio = result.get("this_over_against")
    if ratio:
        lines.append(f"  this/against: client {ratio['client']:.3f}, PostgreSQL "
                     f"{ratio['postgres']:.3f} (medians of the rounds' ratios)")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="alternations of the versions")
    parser.add_argument(
        "--past-months", type=int, default=0, help="filled partitions before this month"
    )
    parser.add_argument("--against", help="another checkout of the hub whose statement to compare")
    parser.add_argument("--variant", help="name of a schema change compared with this schema")
    parser.add_argument("--up", default="", help="with --variant: SQL run before its sets")
    parser.add_argument("--down", default="", help="with --variant: SQL undoing --up after them")
    parser.add_argument(
        "--replace", nargs=2, metavar=("OLD", "NEW"), help="with --variant: edit its statement"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.variant and args.against:
        parser.error("--variant and --against each name the other side: give one")
    if (args.up or args.down or args.replace) and not args.variant:
        parser.error("--up, --down and --replace belong to a --variant")
    scratch = Scratch(settings=load_settings())
    try:
        scratch.hub("migrate")
        result = asyncio.run(measure(args, scratch.database_url))
        print(json.dumps(result, indent=2) if args.json else render(result))
    finally:
        scratch.close()


if __name__ == "__main__":
    main()
