"""Policy decisions in-process: decisions per second and latency per entrypoint.

Loads a bundle folder (default: `policies/`) with the hub's own loader and engine, then times
realistic inputs for every entrypoint, one call at a time on one thread:

- **engine**: `PolicyEngine.evaluate` alone (input JSON in, result JSON out);
- **decide**: `PolicyService.decide` as the hub calls it: encode the typed input, evaluate,
  decode into the result Struct, evaluate `system/log/mask` and mask the logged input, build
  the `DecisionRecord` (handed to a sink that only counts);
- **authz input**: where an authz evaluation's time goes, and the same evaluation with the
  input parsed as a Rego term (the exact path) instead of built with rego-cpp's C calls;
- **authz cache**: what a decision cache keyed on the fields authz reads would give (the hub
  has no such cache; this measures the option).

Needs no database or Redis. Figures are per call, in µs (p50/p90/p99 nearest rank).

    .venv/bin/python bench/policy.py [--bundle policies] [--iterations 2000] [--json]
"""

import argparse
import asyncio
import contextlib
import math
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry

from hub.identity.schemas import Subject
from hub.policy.bundle import LoadedBundle, load_bundle_dir
from hub.policy.engines import ENTRYPOINTS, RegoEngine, load_engine
from hub.policy.engines import rego as rego_module
from hub.policy.errors import PolicyEvaluationError
from hub.policy.metrics import PolicyMetrics
from hub.policy.ports import PolicyEngine
from hub.policy.schemas import (
    AuthzInput,
    AuthzResult,
    DecisionRecord,
    IngestGroup,
    IngestInput,
    IngestNode,
    IngestResult,
    Recipient,
    ReleaseInput,
    ReleaseResult,
    RequestInfo,
    RetentionInput,
    RetentionResult,
)
from hub.policy.service import PolicyService

TARGET_AUTHZ_P99_US = 250.0
NOW = datetime(2026, 11, 22, 10, 47, 31, tzinfo=UTC)


class Scenario(msgspec.Struct, frozen=True):
    """One entrypoint with one realistic input."""

    name: str
    entrypoint: str
    input: msgspec.Struct
    result_type: type[msgspec.Struct]


def scenarios() -> list[Scenario]:
    """Inputs shaped like the hub's own: an agency feed read, an edge upload, a batch of 20
    events, a release of an event with plates, a retention question."""
    agency_user = Subject(
        id="officer-17",
        kind="user",
        roles=["agency"],
        agency="transit-authority",
        jurisdictions=["central"],
        clearance=2,
        purpose="traffic",
    )
    feed = RequestInfo(
        method="GET",
        route="/v1/feeds/{agency}/events",
        path="/v1/feeds/transit-authority/events",
        resource={"agency": "transit-authority", "jurisdiction": "central"},
    )
    node = Subject(id="3f6c1d2e-node", kind="edge_node", roles=["edge_node"])
    upload = RequestInfo(method="POST", route="/v1/edge/events", path="/v1/edge/events")
    admin_only = RequestInfo(
        method="POST", route="/v1/admin/policy/bundles", path="/v1/admin/policy/bundles"
    )
    return [
        Scenario(
            "authz: agency reads its feed",
            "hub/authz/decision",
            AuthzInput(subject=agency_user, request=feed, time=NOW),
            AuthzResult,
        ),
        Scenario(
            "authz: edge node uploads",
            "hub/authz/decision",
            AuthzInput(subject=node, request=upload, time=NOW),
            AuthzResult,
        ),
        Scenario(
            "authz: agency tries admin (deny)",
            "hub/authz/decision",
            AuthzInput(subject=agency_user, request=admin_only, time=NOW),
            AuthzResult,
        ),
        Scenario(
            "ingest: 100 events (18 groups)", "hub/ingest/decision", ingest_input(), IngestResult
        ),
        Scenario(
            "release: plates hashed for transit",
            "hub/release/decision",
            release_input(),
            ReleaseResult,
        ),
        Scenario(
            "retention: detection, north",
            "hub/retention/decision",
            RetentionInput(data_class="detection_event", jurisdiction="north"),
            RetentionResult,
        ),
    ]


def ingest_input(count: int = 100) -> IngestInput:
    """The groups of a busy 100-event batch: three cameras, six class lists."""
    classes = [
        ["plate", "vehicle"],
        ["person"],
        ["face", "person"],
        ["vehicle"],
        ["person", "vehicle"],
        ["person", "plate", "vehicle"],
    ]
    keys = {(f"demo-cam-{1 + i % 3}", tuple(classes[i % len(classes)])) for i in range(count)}
    groups = [
        IngestGroup(camera_id=c, model_name="yolov8n-hub", classes=list(k)) for c, k in sorted(keys)
    ]
    return IngestInput(
        node=IngestNode(id="3f6c1d2e-node", name="gate-7", status="active"), groups=groups
    )


def release_input() -> ReleaseInput:
    box = {"x": 0.41, "y": 0.52, "width": 0.08, "height": 0.03}
    record = {
        "event_id": "0193a8f0-0000-7000-8000-000000000001",
        "camera_id": "demo-cam-2",
        "captured_at": NOW.isoformat(),
        "model_name": "yolov8n-hub",
        "model_version": "2026.11",
        "detections": [
            {"label": "vehicle", "confidence": 0.93, "box": box, "track_id": "t-881"},
            {
                "label": "plate",
                "confidence": 0.88,
                "box": box,
                "track_id": "t-881",
                "attributes": {"plate_text": "AB-123-CD", "plate_region": "NL"},
            },
            {"label": "person", "confidence": 0.77, "box": box, "track_id": "t-882"},
        ],
        "media": [{"sha256": "ab" * 32, "kind": "snapshot", "content_type": "image/jpeg"}],
    }
    return ReleaseInput(
        recipient=Recipient(
            id="transit-authority", kind="agency", jurisdictions=["central"], clearance=2
        ),
        purpose="traffic",
        data_class="detection_event",
        record=record,
    )


class CountingSink:
    """Takes decision records and only counts them (no database in this benchmark)."""

    def __init__(self) -> None:
        self.count = 0

    async def record(self, record: DecisionRecord) -> None:
        self.count += 1


def percentile(sorted_ns: list[int], q: float) -> float:
    """Nearest-rank percentile, in µs."""
    rank = max(1, math.ceil(q * len(sorted_ns)))
    return sorted_ns[rank - 1] / 1000


def summarise(
    samples: list[int], *, errors: int = 0, total_ns: int | None = None
) -> dict[str, Any]:
    ordered = sorted(samples)
    total = total_ns if total_ns is not None else sum(samples)
    return {
        "per_s": round(len(samples) / (total / 1e9)) if total else 0,
        "p50_us": round(percentile(ordered, 0.50), 1),
        "p90_us": round(percentile(ordered, 0.90), 1),
        "p99_us": round(percentile(ordered, 0.99), 1),
        "max_us": round(ordered[-1] / 1000, 1),
        "errors": errors,
    }


def time_calls(call: Callable[[], object], *, iterations: int, warmup: int) -> dict[str, Any]:
    """Time `call` one at a time; an evaluation error counts, it does not stop the run."""
    errors = 0
    for _ in range(warmup):
        with contextlib.suppress(PolicyEvaluationError):
            call()
    samples: list[int] = []
    clock = time.perf_counter_ns
    started = clock()
    for _ in range(iterations):
        begin = clock()
        try:
            call()
        except PolicyEvaluationError:
            errors += 1
        samples.append(clock() - begin)
    return summarise(samples, errors=errors, total_ns=clock() - started)


def bench_engine(
    engine: PolicyEngine, cases: list[Scenario], args: argparse.Namespace
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for case in cases:
        raw = msgspec.json.encode(case.input)

        def call(ep: str = case.entrypoint, raw: bytes = raw) -> bytes:
            return engine.evaluate(ep, raw)

        out[case.name] = {
            "entrypoint": case.entrypoint,
            **time_calls(call, iterations=args.iterations, warmup=args.warmup),
        }
    return out


def bench_decide(
    engine: PolicyEngine, cases: list[Scenario], args: argparse.Namespace
) -> dict[str, Any]:
    sink = CountingSink()
    service = PolicyService(
        engine, sink=sink, eval_budget_ms=1000, metrics=PolicyMetrics(CollectorRegistry())
    )
    out: dict[str, Any] = {}

    async def run(case: Scenario) -> dict[str, Any]:
        failed = 0
        for _ in range(args.warmup):
            await service.decide(case.entrypoint, case.input, result_type=case.result_type)
        samples: list[int] = []
        clock = time.perf_counter_ns
        started = clock()
        for _ in range(args.iterations):
            begin = clock()
            _, record = await service.decide(
                case.entrypoint, case.input, result_type=case.result_type
            )
            samples.append(clock() - begin)
            failed += record.error is not None
        return summarise(samples, errors=failed, total_ns=clock() - started)

    async def run_all() -> None:
        for case in cases:
            out[case.name] = {"entrypoint": case.entrypoint, **await run(case)}

    asyncio.run(run_all())
    return out


def bench_authz_input(
    bundle: LoadedBundle, case: Scenario, args: argparse.Namespace
) -> dict[str, Any]:
    """Where an authz evaluation's time goes (rego-cpp only)."""
    fast = RegoEngine(
        bundle.sources, bundle.data_json, revision=bundle.revision, entrypoints=ENTRYPOINTS
    )
    exact = RegoEngine(
        bundle.sources,
        bundle.data_json,
        revision=bundle.revision,
        entrypoints=ENTRYPOINTS,
        exact_input=True,
    )
    raw = msgspec.json.encode(case.input)
    value = msgspec.json.decode(raw)
    interpreter, compiled = fast._interpreter, fast._bundle
    timed = {"iterations": args.iterations, "warmup": args.warmup}
    interpreter.set_input(rego_module._CInput(value))
    return {
        "input: JSON decode": time_calls(lambda: msgspec.json.decode(raw), **timed),
        "input: C calls + set": time_calls(
            lambda: interpreter.set_input(rego_module._CInput(value)), **timed
        ),
        "input: parse as Rego term": time_calls(
            lambda: interpreter.set_input_term(raw.decode()), **timed
        ),
        "query + output parse": time_calls(
            lambda: interpreter.query_bundle_entrypoint(compiled, case.entrypoint), **timed
        ),
        "evaluate, C input (default)": time_calls(
            lambda: fast.evaluate(case.entrypoint, raw), **timed
        ),
        "evaluate, exact input": time_calls(lambda: exact.evaluate(case.entrypoint, raw), **timed),
    }


def bench_authz_cache(
    engine: PolicyEngine, cases: list[Scenario], args: argparse.Namespace
) -> dict[str, Any]:
    """What a decision cache for authz would give: key on the fields the default authz policy
    reads (subject, method, route, resource; not the time, which it does not read) and the
    bundle revision; a hit skips evaluation. Measured as a hit (key + lookup) and a miss
    (key + evaluate + store)."""
    cache: dict[bytes, bytes] = {}
    authz = [c for c in cases if c.entrypoint == "hub/authz/decision"]

    def key(case: Scenario) -> bytes:
        inp = case.input
        assert isinstance(inp, AuthzInput)
        req = inp.request
        return msgspec.json.encode(
            (engine.revision, inp.subject, req.method, req.route, sorted(req.resource.items()))
        )

    def lookup(case: Scenario, raw: bytes) -> bytes:
        k = key(case)
        hit = cache.get(k)
        if hit is None:
            hit = cache[k] = engine.evaluate(case.entrypoint, raw)
        return hit

    out: dict[str, Any] = {}
    timed = {"iterations": args.iterations, "warmup": args.warmup}
    for case in authz:
        raw = msgspec.json.encode(case.input)
        out[f"hit: {case.name}"] = time_calls(lambda c=case, r=raw: lookup(c, r), **timed)

    def miss(case: Scenario = authz[0], raw: bytes = msgspec.json.encode(authz[0].input)) -> None:
        cache.clear()
        lookup(case, raw)

    out[f"miss: {authz[0].name}"] = time_calls(miss, **timed)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    bundle = load_bundle_dir(Path(args.bundle))
    engine = load_engine(bundle)
    cases = scenarios()
    result: dict[str, Any] = {
        "bundle": args.bundle,
        "revision": bundle.revision,
        "engine": "wasm" if bundle.wasm is not None else "rego",
        "iterations": args.iterations,
        "python": platform.python_version(),
        "engine_evaluate": bench_engine(engine, cases, args),
        "service_decide": bench_decide(engine, cases, args),
    }
    if bundle.wasm is None:
        result["authz_input"] = bench_authz_input(bundle, cases[0], args)
    result["authz_cache"] = bench_authz_cache(engine, cases, args)
    authz_p99 = max(
        v["p99_us"]
        for v in result["engine_evaluate"].values()
        if v["entrypoint"] == "hub/authz/decision"
    )
    result["target"] = {
        "authz_p99_us": authz_p99,
        "goal_us": TARGET_AUTHZ_P99_US,
        "met": authz_p99 < TARGET_AUTHZ_P99_US,
    }
    return result


def print_table(title: str, rows: dict[str, Any]) -> None:
    print(f"\n{title}")
    head = f"{'per s':>8} {'p50 µs':>8} {'p90 µs':>8} {'p99 µs':>8} {'max µs':>9} {'errors':>6}"
    print(f"  {'':38} {head}")
    for name, r in rows.items():
        print(
            f"  {name:38} {r['per_s']:>8} {r['p50_us']:>8} {r['p90_us']:>8} {r['p99_us']:>8}"
            f" {r['max_us']:>9} {r['errors']:>6}"
        )


def print_report(result: dict[str, Any]) -> None:
    print(
        f"policy bench: bundle {result['bundle']} (revision {result['revision']}, "
        f"engine {result['engine']}), {result['iterations']} calls each, "
        f"Python {result['python']}, one thread"
    )
    print_table("PolicyEngine.evaluate (JSON in, JSON out)", result["engine_evaluate"])
    print_table(
        "PolicyService.decide (typed, + system/log/mask, masking, record)", result["service_decide"]
    )
    if "authz_input" in result:
        print_table("authz, where the time goes (rego-cpp)", result["authz_input"])
    print_table("authz with the decision cache (HUB_POLICY_CACHE_SIZE)", result["authz_cache"])
    target = result["target"]
    verdict = "met" if target["met"] else "missed"
    print(
        f"\ntarget: hub/authz/decision p99 < {target['goal_us']:.0f} µs in-process: "
        f"{verdict} (worst authz p99 {target['authz_p99_us']} µs)"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--bundle", default="policies", help="bundle folder to load")
    parser.add_argument("--iterations", type=int, default=2000, help="timed calls per scenario")
    parser.add_argument("--warmup", type=int, default=300, help="untimed calls first")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    result = run(args)
    if args.json:
        sys.stdout.write(msgspec.json.encode(result).decode() + "\n")
    else:
        print_report(result)


if __name__ == "__main__":
    main()
