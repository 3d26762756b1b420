"""Sizing table: cores, PostgreSQL connections and disk for N cameras at R events/s with M
agencies, computed from the CPU per operation the benchmarks measured (docs/capacity.md).

    .venv/bin/python bench/capacity.py [--cameras 1000 --rate 0.5 --agencies 5 ...]

With no scenario given it prints the table of docs/capacity.md. The constants below are
measured CPU milliseconds per operation (not rates: the machine they came from is shared and
busy, so rates say more about the neighbours than about the hub) and bytes on disk per row;
re-measure with the benchmarks named beside each and edit them here.
"""

import argparse
import math
from dataclasses import dataclass

# CPU ms per operation, one core = 1,000 ms/s.
# bench/ingest.py, 2026-12-04 evening, quiet machine, 4 clients, three runs: API 8.36-9.51 ms +
# PostgreSQL 10.39-11.99 ms per 100-event batch (the higher kept).
API_MS_PER_EVENT = 0.095
PG_MS_PER_EVENT = 0.12
# Worker CPU per delivery sent, everything included (claim, re-hydrate, release decision,
# adapter, finish): bench/delivery.py one-kind phases, after the issue 16 transport work, two
# runs on 2026-12-04 evening (REST 1.30 / 1.24, SOAP 2.07 / 1.83, XML 1.70 / 1.55 ms); the
# higher of each is kept. JetStream: REST's 1.30 less its adapter call (0.54) plus a publish
# (0.07).
WORKER_MS_PER_SENT = {"rest": 1.30, "soap": 2.07, "xml": 1.70, "jetstream": 0.83}
# A withheld delivery costs the engine and the decision without the adapter call.
WORKER_MS_PER_WITHHELD = 0.76
# PostgreSQL CPU per delivery: the bench's own backends over each one-kind phase, less the
# ingest share (0.095 ms per event): 0.127, 0.127 and 0.130 ms in the three phases.
PG_MS_PER_DELIVERY = 0.13
# bench/feeds.py, 2026-12-04 evening, 100,000 events, walk: API 4.46-4.51 ms + PostgreSQL
# 2.36 ms per 100-item page.
API_MS_PER_FEED_ITEM = 0.045
PG_MS_PER_FEED_ITEM = 0.024
PG_MS_PER_AUDIT_ENTRY = 0.12  # bench/audit.py: append 0.104 + sealing 0.016
RELEASE_DECISION_MS = (1.21, 0.108)  # bench/delivery.py, 2026-12-04 evening: uncached, cached
# Bytes on disk per row, indexes included: a scratch database after 2,000 events offered to
# three agencies (3,000 delivered, 3,000 withheld), VACUUM ANALYZE, 2026-12-04.
EVENT_BYTES = 1540 + 438 + 348  # detection_event + feed_entry + pii_attribute
DELIVERY_BYTES = 812  # delivery (its payload copy and indexes)
ATTEMPT_BYTES = 264  # delivery_attempt, one per attempt (withheld rows have one too)
DECISION_BYTES = 1556  # policy_decisions: every release decision is logged (masked)
AUDIT_BYTES_PER_EVENT = 94  # audit entries and tree, amortised over the events
# Headroom: size for peaks at `PEAK` x the mean, running cores at most `UTILISATION` busy.
PEAK = 2.0
UTILISATION = 0.6
POOL_PER_PROCESS = 10  # HUB_DB_POOL_MAX


@dataclass(frozen=True)
class Scenario:
    """A deployment to size."""

    cameras: int
    rate: float  # events per second per camera (an event holds one or more detections)
    agencies: int  # push agencies offered every event
    released: float = 0.5  # share of offered deliveries policy lets through
    feed_readers: int = 0  # agencies reading every event from the feed
    retention_days: int = 30
    kind: str = "rest"  # the adapter kind of the push agencies


@dataclass(frozen=True)
class Sizing:
    """What the scenario needs."""

    events: float
    deliveries: float
    feed_items: float
    decisions: float
    api_cores: float
    worker_cores: float
    pg_cores: float
    api_processes: int
    worker_processes: int
    pg_connections: int
    disk_gb: float
    write_mb_s: float


def size(s: Scenario) -> Sizing:
    """The cores, connections and disk `s` needs, with peak headroom and utilisation."""
    events = s.cameras * s.rate
    offered = events * s.agencies  # every offered delivery gets a release decision
    sent = offered * s.released
    feed = events * s.feed_readers
    headroom = PEAK / UTILISATION
    api_ms = events * API_MS_PER_EVENT + feed * API_MS_PER_FEED_ITEM
    worker_ms = sent * WORKER_MS_PER_SENT[s.kind] + (offered - sent) * WORKER_MS_PER_WITHHELD
    pg_ms = (
        events * (PG_MS_PER_EVENT + PG_MS_PER_AUDIT_ENTRY / 100)
        + offered * PG_MS_PER_DELIVERY
        + feed * PG_MS_PER_FEED_ITEM
    )
    api, worker, pg = (ms / 1000 * headroom for ms in (api_ms, worker_ms, pg_ms))
    api_processes, worker_processes = max(2, math.ceil(api)), max(2, math.ceil(worker))
    row_bytes = events * (EVENT_BYTES + AUDIT_BYTES_PER_EVENT)
    row_bytes += offered * (DELIVERY_BYTES + ATTEMPT_BYTES) + (offered + feed) * DECISION_BYTES
    return Sizing(
        events=events,
        deliveries=sent,
        feed_items=feed,
        decisions=offered + feed,
        api_cores=api,
        worker_cores=worker,
        pg_cores=pg,
        api_processes=api_processes,
        worker_processes=worker_processes,
        pg_connections=(api_processes + worker_processes) * POOL_PER_PROCESS,
        disk_gb=row_bytes * 86_400 * s.retention_days / 1e9,
        # WAL writes each row about twice (full-page images after checkpoints included).
        write_mb_s=2 * row_bytes / 1e6,
    )


def per_core() -> dict[str, float]:
    """Operations one busy core does, by kind."""
    return {
        "events ingested (API + PostgreSQL)": 1000 / (API_MS_PER_EVENT + PG_MS_PER_EVENT),
        **{
            f"deliveries sent (worker, {kind})": 1000 / ms
            for kind, ms in WORKER_MS_PER_SENT.items()
        },
        "feed items released (API + PostgreSQL)": 1000
        / (API_MS_PER_FEED_ITEM + PG_MS_PER_FEED_ITEM),
        "release decisions (uncached)": 1000 / RELEASE_DECISION_MS[0],
        "release decisions (cached verdict)": 1000 / RELEASE_DECISION_MS[1],
    }


DEFAULT_SCENARIOS = (
    Scenario(cameras=100, rate=0.1, agencies=3),
    Scenario(cameras=1_000, rate=0.1, agencies=5),
    Scenario(cameras=1_000, rate=0.1, agencies=5, feed_readers=5),
    Scenario(cameras=5_000, rate=0.1, agencies=10),
    Scenario(cameras=5_000, rate=0.1, agencies=10, kind="jetstream"),
    Scenario(cameras=20_000, rate=0.1, agencies=10),
)


def table(scenarios: tuple[Scenario, ...]) -> str:
    """The sizing table as Markdown."""
    lines = [
        "| cameras x ev/s, agencies (feeds), kind | events/s | deliveries/s | API cores "
        "| worker cores | PostgreSQL cores | processes (API+worker) | PG connections "
        "| disk (retention) | WAL MB/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in scenarios:
        z = size(s)
        lines.append(
            f"| {s.cameras:,} x {s.rate:g}, {s.agencies} ({s.feed_readers}), {s.kind} "
            f"| {z.events:,.0f} "
            f"| {z.deliveries:,.0f} | {z.api_cores:.1f} | {z.worker_cores:.1f} "
            f"| {z.pg_cores:.1f} | {z.api_processes}+{z.worker_processes} | {z.pg_connections} "
            f"| {z.disk_gb:,.0f} GB ({s.retention_days} d) | {z.write_mb_s:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int)
    parser.add_argument("--rate", type=float, default=0.5, help="events/s per camera")
    parser.add_argument("--agencies", type=int, default=5)
    parser.add_argument("--released", type=float, default=0.5)
    parser.add_argument("--feed-readers", type=int, default=0)
    parser.add_argument("--retention-days", type=int, default=30)
    parser.add_argument("--kind", choices=sorted(WORKER_MS_PER_SENT), default="rest")
    args = parser.parse_args()
    print("Per busy core (from measured CPU per operation):")
    for name, value in per_core().items():
        print(f"  {name}: {value:,.0f}/s")
    print(f"Sized for peaks at {PEAK:g}x the mean with cores at most {UTILISATION:.0%} busy.\n")
    scenarios = DEFAULT_SCENARIOS
    if args.cameras:
        scenarios = (
            Scenario(
                cameras=args.cameras,
                rate=args.rate,
                agencies=args.agencies,
                released=args.released,
                feed_readers=args.feed_readers,
                retention_days=args.retention_days,
                kind=args.kind,
            ),
        )
    print(table(scenarios))


if __name__ == "__main__":
    main()
