"""PolicyService: typed decisions, fail closed on every kind of failure, masked records."""

import asyncio
import functools
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from hub.identity.schemas import Subject
from hub.policy.engines import ENTRYPOINTS, RegoEngine
from hub.policy.errors import DecisionLogFullError, PolicyEvaluationError
from hub.policy.metrics import PolicyMetrics
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
from hub.policy.service import (
    FAIL_CLOSED_KEEP_DAYS,
    FULLY_MASKED,
    MASKED,
    PolicyService,
    fail_closed,
    mask_pointer,
    new_decision_id,
)

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
PLATE = "AB-123-CD"

GOOD = {
    "hub/authz.rego": """package hub.authz
import rego.v1
default decision := {"allow": false, "reason": "no rule allows this"}
decision := {"allow": true, "reason": "admin"} if "admin" in input.subject.roles
""",
    "hub/ingest.rego": """package hub.ingest
import rego.v1
decision := {"groups": [verdict(g) | some g in input.groups]}
verdict(g) := {"action": "accept", "reason": "ok", "min_confidence": 0.5} if g.camera_id == "cam-1"
verdict(g) := {"action": "drop", "reason": "unknown camera"} if g.camera_id != "cam-1"
""",
    "hub/release.rego": """package hub.release
import rego.v1
decision := {"allow": true, "reason": "test", "redactions": [
    {"path": "/detections/*/attributes/plate_text", "op": "hash"}]}
""",
    "hub/retention.rego": """package hub.retention
import rego.v1
decision := {"keep_days": 30, "hold": input.legal_hold, "reason": "default"}
""",
    "system/log.rego": """package system.log
import rego.v1
mask contains "/input/record/detections/*/attributes/plate_text"
mask contains {"path": "/input/record/detections/*/crop_ref"}
mask contains "/input/subject/id" if input.entrypoint == "hub/authz/decision"
""",
}
# Every entrypoint defined twice with different values: rego-cpp reports a conflict.
BROKEN = {
    f"{name}.rego": f"""package {name.replace("/", ".")}
import rego.v1
{rule} := {{"x": 1}}
{rule} := {{"x": 2}}
"""
    for name, rule in [
        ("hub/authz", "decision"),
        ("hub/ingest", "decision"),
        ("hub/release", "decision"),
        ("hub/retention", "decision"),
        ("system/log", "mask"),
    ]
}
WRONG_SHAPE = {
    "hub/authz.rego": 'package hub.authz\ndecision := {"allow": "yes", "reason": 1}\n',
    "hub/ingest.rego": 'package hub.ingest\ndecision := {"groups": []}\n',
}


class ListSink:
    """A decision sink that keeps records in a list."""

    def __init__(self) -> None:
        self.records: list[DecisionRecord] = []

    async def record(self, record: DecisionRecord) -> None:
        self.records.append(record)


class FullSink:
    """A decision log whose buffer never has room."""

    async def record(self, record: DecisionRecord) -> None:
        raise DecisionLogFullError("full for the test")


class SlowEngine:
    """An engine that answers correctly, too late."""

    revision = "slow"

    def evaluate(self, entrypoint: str, input_json: bytes) -> bytes:
        time.sleep(0.005)
        return b'{"allow": true, "reason": "late"}'


class ClosableEngine(SlowEngine):
    closed = False

    def close(self) -> None:
        self.closed = True


def engine(sources: dict[str, str]) -> RegoEngine:
    return RegoEngine(sources, "{}", revision="rev-1", entrypoints=ENTRYPOINTS)


def service(
    sources: dict[str, str] | None = GOOD, *, sink: Any = None, budget_ms: int = 1000
) -> tuple[PolicyService, ListSink, CollectorRegistry]:
    registry = CollectorRegistry()
    sink = sink or ListSink()
    svc = PolicyService(
        None if sources is None else engine(sources),
        sink=sink,
        eval_budget_ms=budget_ms,
        clock=lambda: NOW,
        metrics=PolicyMetrics(registry),
    )
    return svc, sink, registry


def authz_input(*, roles: list[Any]) -> AuthzInput:
    return AuthzInput(
        subject=Subject(id="officer-7", kind="user", roles=roles),
        request=RequestInfo(method="GET", route="/v1/events/{id}", path="/v1/events/e1"),
        time=NOW,
    )


def ingest_input(*cameras: str) -> IngestInput:
    groups = [IngestGroup(camera_id=c, model_name="yolo", classes=["car"]) for c in cameras]
    return IngestInput(node=IngestNode(id="n1", name="node", status="active"), groups=groups)


def release_input() -> ReleaseInput:
    record = {
        "event_id": "e1",
        "detections": [
            {"label": "person", "crop_ref": "sha256:face", "attributes": {}},
            {"label": "plate", "attributes": {"plate_text": PLATE}},
            {"label": "plate", "attributes": {"plate_text": "XY-999-ZZ", "colour": "red"}},
        ],
    }
    return ReleaseInput(
        recipient=Recipient(id="police-north", kind="agency"),
        purpose="investigation",
        data_class="detection",
        record=record,
    )


def retention_input() -> RetentionInput:
    return RetentionInput(data_class="detection", jurisdiction="north")


def failed(registry: CollectorRegistry, entrypoint: str, cause: str) -> float:
    labels = {"entrypoint": entrypoint, "cause": cause}
    return registry.get_sample_value("hub_policy_failed_closed_total", labels) or 0.0


# --- decisions ------------------------------------------------------------------------------


async def test_decisions_come_back_typed_with_their_record() -> None:
    svc, sink, registry = service()
    allowed, record = await svc.decide(
        "hub/authz/decision", authz_input(roles=["admin"]), result_type=AuthzResult
    )
    denied, _ = await svc.decide(
        "hub/authz/decision", authz_input(roles=["operator"]), result_type=AuthzResult
    )
    assert allowed == AuthzResult(allow=True, reason="admin")
    assert denied == AuthzResult(allow=False, reason="no rule allows this")
    assert sink.records[0] is record
    assert uuid.UUID(record.decision_id).version == 7
    assert (record.entrypoint, record.revision, record.at) == ("hub/authz/decision", "rev-1", NOW)
    assert 0 < record.latency_us < 1_000_000
    assert record.result == {"allow": True, "reason": "admin"}
    assert record.error is None
    assert svc.revision == "rev-1"
    ok = {"entrypoint": "hub/authz/decision", "outcome": "ok"}
    assert registry.get_sample_value("hub_policy_decisions_total", ok) == 2


async def test_ingest_release_and_retention_decode_into_their_results() -> None:
    svc, _, _ = service()
    ingest, _ = await svc.decide(
        "hub/ingest/decision", ingest_input("cam-1", "cam-2"), result_type=IngestResult
    )
    release, _ = await svc.decide(
        "hub/release/decision", release_input(), result_type=ReleaseResult
    )
    retention, _ = await svc.decide(
        "hub/retention/decision", retention_input(), result_type=RetentionResult
    )
    assert [v.action for v in ingest.groups] == ["accept", "drop"]
    assert ingest.groups[0].min_confidence == 0.5
    assert release.allow
    assert release.redactions[0].op == "hash"
    assert retention == RetentionResult(keep_days=30, hold=False, reason="default")


# --- failing closed -----------------------------------------------------------------------

CASES: list[tuple[str, Any, type[Any]]] = [
    ("hub/authz/decision", authz_input(roles=["admin"]), AuthzResult),
    ("hub/ingest/decision", ingest_input("cam-1", "cam-2", "cam-3"), IngestResult),
    ("hub/release/decision", release_input(), ReleaseResult),
    ("hub/retention/decision", retention_input(), RetentionResult),
]


def assert_closed(result: Any, cause: str) -> None:
    reason = f"policy error: {cause}"
    if isinstance(result, IngestResult):
        assert result.groups
        assert all(v.action == "quarantine" and v.reason == reason for v in result.groups)
    elif isinstance(result, RetentionResult):
        assert result == RetentionResult(keep_days=FAIL_CLOSED_KEEP_DAYS, hold=True, reason=reason)
    else:
        assert result.allow is False
        assert result.reason == reason


@pytest.mark.parametrize(("entrypoint", "input", "result_type"), CASES, ids=lambda c: str(c)[:22])
async def test_a_broken_policy_fails_closed(entrypoint: str, input: Any, result_type: Any) -> None:
    svc, sink, registry = service(BROKEN)
    result, record = await svc.decide(entrypoint, input, result_type=result_type)
    assert_closed(result, "evaluation")
    assert record.error is not None
    assert record.error.startswith("evaluation: ")
    assert "multiple outputs" in record.error
    assert record.result == msgspec.to_builtins(result)
    assert sink.records == [record]
    assert failed(registry, entrypoint, "evaluation") == 1
    # The mask is broken too, so the logged input is fully redacted.
    assert record.input == FULLY_MASKED


@pytest.mark.parametrize(("entrypoint", "input", "result_type"), CASES, ids=lambda c: str(c)[:22])
async def test_no_active_bundle_fails_closed(entrypoint: str, input: Any, result_type: Any) -> None:
    svc, _, registry = service(None)
    result, record = await svc.decide(entrypoint, input, result_type=result_type)
    assert_closed(result, "no_bundle")
    assert (record.revision, record.input) == ("", FULLY_MASKED)
    assert failed(registry, entrypoint, "no_bundle") == 1


@pytest.mark.parametrize(("entrypoint", "input", "result_type"), CASES, ids=lambda c: str(c)[:22])
async def test_a_full_decision_log_fails_closed(
    entrypoint: str, input: Any, result_type: Any
) -> None:
    svc, _, registry = service(sink=FullSink())
    result, record = await svc.decide(entrypoint, input, result_type=result_type)
    assert_closed(result, "log_full")
    assert record.error == "log_full: full for the test"
    assert failed(registry, entrypoint, "log_full") == 1


async def test_a_result_that_does_not_match_the_schema_fails_closed() -> None:
    svc, _, registry = service(WRONG_SHAPE)
    result, record = await svc.decide(
        "hub/authz/decision", authz_input(roles=["admin"]), result_type=AuthzResult
    )
    assert_closed(result, "schema")
    assert record.error is not None
    assert "does not match AuthzResult" in record.error
    assert failed(registry, "hub/authz/decision", "schema") == 1


async def test_an_ingest_result_with_the_wrong_number_of_verdicts_fails_closed() -> None:
    svc, _, _ = service(WRONG_SHAPE)
    result, record = await svc.decide(
        "hub/ingest/decision", ingest_input("cam-1", "cam-2"), result_type=IngestResult
    )
    assert [v.action for v in result.groups] == ["quarantine", "quarantine"]
    assert record.error == "schema: 0 verdicts for 2 groups"


async def test_an_evaluation_over_budget_fails_closed() -> None:
    svc, _, registry = service(budget_ms=1)
    svc.activate(SlowEngine())
    result, record = await svc.decide(
        "hub/authz/decision", authz_input(roles=["admin"]), result_type=AuthzResult
    )
    assert_closed(result, "timeout")
    assert record.latency_us >= 5000
    assert failed(registry, "hub/authz/decision", "timeout") == 1


def test_a_result_type_without_a_safe_default_is_refused() -> None:
    with pytest.raises(PolicyEvaluationError, match="no fail-closed default"):
        fail_closed(DecisionRecord, authz_input(roles=[]), cause="evaluation")


# --- masking ----------------------------------------------------------------------------------


async def test_the_logged_input_has_no_plate_text_or_crop_reference() -> None:
    svc, sink, _ = service()
    result, record = await svc.decide(
        "hub/release/decision", release_input(), result_type=ReleaseResult
    )
    detections = record.input["record"]["detections"]
    assert [d["attributes"].get("plate_text") for d in detections] == [None, MASKED, MASKED]
    assert detections[0]["crop_ref"] == MASKED
    assert detections[2]["attributes"]["colour"] == "red"
    logged = msgspec.json.encode(sink.records[0])
    assert PLATE.encode() not in logged
    assert b"XY-999-ZZ" not in logged
    assert b"sha256:face" not in logged
    # Only the log is masked: the caller's input is untouched.
    assert release_input().record["detections"][1]["attributes"]["plate_text"] == PLATE
    assert result.allow


async def test_masks_can_depend_on_the_entrypoint() -> None:
    svc, _, _ = service()
    _, authz = await svc.decide(
        "hub/authz/decision", authz_input(roles=["admin"]), result_type=AuthzResult
    )
    _, retention = await svc.decide(
        "hub/retention/decision", retention_input(), result_type=RetentionResult
    )
    assert authz.input["subject"]["id"] == MASKED
    assert authz.input["subject"]["roles"] == ["admin"]
    assert retention.input == msgspec.to_builtins(retention_input())


async def test_a_failing_mask_logs_the_input_fully_redacted() -> None:
    sources = {**GOOD, "system/log.rego": "package system.log\nmask := 1\nmask := 2\n"}
    svc, _, registry = service(sources)
    result, record = await svc.decide(
        "hub/release/decision", release_input(), result_type=ReleaseResult
    )
    assert result.allow  # the decision itself stands
    assert record.input == FULLY_MASKED
    labels = {"entrypoint": "hub/release/decision"}
    assert registry.get_sample_value("hub_policy_mask_failures_total", labels) == 1


def test_mask_pointers_follow_rfc_6901_with_wildcards() -> None:
    doc: dict[str, Any] = {
        "input": {
            "a/b": 1,
            "t~n": 2,
            "list": [{"x": 1}, {"x": 2}, {"y": 3}],
            "map": {"k1": {"x": 1}, "k2": {"x": 2}},
            "keep": 4,
        }
    }
    for pointer in ["/input/a~1b", "/input/t~0n", "/input/list/*/x", "/input/map/*/x"]:
        mask_pointer(doc, pointer)
    mask_pointer(doc, "/input/missing/deep")
    mask_pointer(doc, "/input/list/9/x")
    mask_pointer(doc, "no-leading-slash")
    assert doc["input"] == {
        "a/b": MASKED,
        "t~n": MASKED,
        "list": [{"x": MASKED}, {"x": MASKED}, {"y": 3}],
        "map": {"k1": {"x": MASKED}, "k2": {"x": MASKED}},
        "keep": 4,
    }
    mask_pointer(doc, "/input/list/1")
    assert doc["input"]["list"][1] == MASKED


# --- engine swap and ids ---------------------------------------------------------------------


async def test_activation_swaps_the_engine_and_closes_the_old_one_after_the_grace() -> None:
    svc = PolicyService(None, sink=ListSink(), eval_budget_ms=1000, retire_grace_seconds=0.05)
    old = ClosableEngine()
    assert svc.activate(old) is None
    previous = svc.activate(engine(GOOD))
    assert previous is old
    assert not old.closed  # a request that pinned it may still be deciding
    result, _ = await svc.decide(
        "hub/authz/decision", authz_input(roles=["admin"]), result_type=AuthzResult
    )
    assert result.reason == "admin"
    await asyncio.sleep(0.2)
    assert old.closed


def test_activation_outside_a_loop_closes_the_old_engine_at_once() -> None:
    svc = PolicyService(None, sink=ListSink(), eval_budget_ms=1000)
    old = ClosableEngine()
    svc.activate(old)
    svc.activate(engine(GOOD))
    assert old.closed


class NamedEngine:
    """Answers authz with its own name, so a decision shows which engine made it."""

    def __init__(self, name: str) -> None:
        self.revision = name
        self.closed = False

    def evaluate(self, entrypoint: str, input_json: bytes) -> bytes:
        if self.closed:
            raise RuntimeError("evaluated after close")
        if entrypoint == "system/log/mask":
            return b"[]"
        return msgspec.json.encode({"allow": True, "reason": self.revision})

    def close(self) -> None:
        self.closed = True


async def test_a_pinned_request_decides_with_one_engine_across_a_swap() -> None:
    svc = PolicyService(
        NamedEngine("old"), sink=ListSink(), eval_budget_ms=1000, retire_grace_seconds=0.2
    )
    ask = functools.partial(
        svc.decide, "hub/authz/decision", authz_input(roles=[]), result_type=AuthzResult
    )
    with svc.pinned():
        first, _ = await ask()
        svc.activate(NamedEngine("new"))
        second, record = await ask()  # the same request, after the swap
        assert (first.reason, second.reason, record.revision) == ("old", "old", "old")
        assert svc.revision == "old"
    outside, _ = await ask()
    assert outside.reason == "new"
    with svc.pinned():
        assert (await ask())[0].reason == "new"


async def test_a_request_pinned_past_the_grace_moves_to_the_new_engine() -> None:
    old = NamedEngine("old")
    svc = PolicyService(old, sink=ListSink(), eval_budget_ms=1000, retire_grace_seconds=0.05)
    with svc.pinned():  # a live feed: one request that lasts longer than the grace
        svc.activate(NamedEngine("new"))
        await asyncio.sleep(0.2)
        assert old.closed
        result, record = await svc.decide(
            "hub/authz/decision", authz_input(roles=[]), result_type=AuthzResult
        )
    assert (result.reason, record.revision, record.error) == ("new", "new", None)


def test_decision_ids_are_uuid7_and_sort_by_time() -> None:
    first = new_decision_id()
    time.sleep(0.002)
    second = new_decision_id()
    assert uuid.UUID(first).version == 7
    assert uuid.UUID(first).variant == uuid.RFC_4122
    assert first < second
    assert len({new_decision_id() for _ in range(1000)}) == 1000


async def test_cached_answers_are_reused_but_every_decision_is_logged() -> None:
    from datetime import UTC, datetime

    from hub.identity.schemas import Subject
    from hub.policy.engines.rego import RegoEngine
    from hub.policy.schemas import AuthzInput, AuthzResult, RequestInfo
    from hub.policy.service import PolicyService

    source = (
        "package hub.authz\nimport rego.v1\n"
        'decision := {"allow": input.subject.id == "ada", "reason": data.reason}\n'
    )
    logged: list[object] = []

    class Sink:
        async def record(self, record: object) -> None:
            logged.append(record)

    def engine(reason: str) -> RegoEngine:
        return RegoEngine(
            {"a.rego": source},
            f'{{"reason": "{reason}"}}',
            revision=reason,
            entrypoints=["hub/authz/decision"],
        )

    service = PolicyService(engine("first"), sink=Sink(), eval_budget_ms=1000, cache_size=10)
    query = AuthzInput(
        subject=Subject(id="ada", kind="user", roles=["admin"]),
        request=RequestInfo(method="GET", route="/x", path="/x"),
        time=datetime.now(UTC),
    )
    one, rec1 = await service.decide(
        "hub/authz/decision", query, result_type=AuthzResult, cache_key=b"k"
    )
    two, rec2 = await service.decide(
        "hub/authz/decision", query, result_type=AuthzResult, cache_key=b"k"
    )
    assert one == two == AuthzResult(allow=True, reason="first")
    assert rec1.decision_id != rec2.decision_id
    assert len(logged) == 2
    service.activate(engine("second"))  # a new bundle must not answer from the old cache
    three, _ = await service.decide(
        "hub/authz/decision", query, result_type=AuthzResult, cache_key=b"k"
    )
    assert three.reason == "second"


async def test_a_task_started_by_a_pinned_request_uses_the_active_engine() -> None:
    # A background task copies the request's context; it must not keep the request's engine.
    svc = PolicyService(
        NamedEngine("old"), sink=ListSink(), eval_budget_ms=1000, retire_grace_seconds=5
    )
    ask = functools.partial(
        svc.decide, "hub/authz/decision", authz_input(roles=[]), result_type=AuthzResult
    )
    swapped = asyncio.Event()

    async def background() -> str:
        await swapped.wait()
        return (await ask())[0].reason

    with svc.pinned():
        task = asyncio.create_task(background())
        svc.activate(NamedEngine("new"))
        swapped.set()
        assert (await ask())[0].reason == "old"  # the request itself keeps its engine
        assert await task == "new"
