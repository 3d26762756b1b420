"""The default policy bundle in `policies/`: every Rego unit test (one case each, so a
failure is named), then the key scenarios end to end through the hub's own loader and
rego-cpp engine, with results checked against the typed contract of `hub.policy.schemas`."""

import json
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest

from hub.policy import rego_tests
from hub.policy.bundle import LoadedBundle, load_bundle_dir
from hub.policy.engines import ENTRYPOINTS, load_engine
from hub.policy.ports import PolicyEngine
from hub.policy.redaction import apply_redactions, recipient_hash_key
from hub.policy.schemas import (
    AuthzResult,
    IngestResult,
    Redaction,
    ReleaseResult,
    RetentionResult,
)

BUNDLE = Path(__file__).resolve().parents[2] / "policies"


def all_modules(bundle: LoadedBundle) -> dict[str, str]:
    """Policy modules and their tests, as the runner takes them."""
    return {**bundle.sources, **bundle.tests}


REGO_TESTS = rego_tests.discover_tests(all_modules(load_bundle_dir(BUNDLE)))
PLATE = "AB-123-CD"
T = TypeVar("T")


@pytest.fixture(scope="module")
def report() -> rego_tests.TestReport:
    """Every Rego test of the bundle, run once for the whole module."""
    bundle = load_bundle_dir(BUNDLE)
    return rego_tests.run_tests(all_modules(bundle), bundle.data_json)


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    """The bundle as the hub loads it: test modules apart, compiled by rego-cpp."""
    return load_engine(load_bundle_dir(BUNDLE))


def decide(engine: PolicyEngine, entrypoint: str, value: object) -> Any:
    """One decision, decoded from JSON."""
    return msgspec.json.decode(engine.evaluate(entrypoint, msgspec.json.encode(value)))


def typed(raw: dict[str, Any], kind: type[T]) -> T:
    """The result as its contract Struct, refusing a missing, extra or mistyped field."""
    assert set(raw) == set(kind.__struct_fields__)
    return msgspec.convert(raw, kind)


# The Rego unit tests


def test_bundle_has_rego_tests_for_every_module() -> None:
    packages = {name.rsplit(".", 1)[0] for name in REGO_TESTS}
    assert packages == {
        "data.hub.authz_test",
        "data.hub.ingest_test",
        "data.hub.release_test",
        "data.hub.retention_test",
        "data.system.log_test",
    }


@pytest.mark.parametrize("name", REGO_TESTS)
def test_rego(name: str, report: rego_tests.TestReport) -> None:
    result = next(r for r in report.results if r.name == name)
    assert result.passed, result.error


def test_every_rego_test_ran_and_the_bundle_compiled(report: rego_tests.TestReport) -> None:
    assert report.error is None
    assert [r.name for r in report.results] == REGO_TESTS
    assert report.ok


def test_manifest_declares_revision_roots_and_rego_v1() -> None:
    manifest = json.loads((BUNDLE / ".manifest").read_text())
    assert manifest["roots"] == ["hub", "system"]
    assert manifest["rego_version"] == 1
    assert manifest["revision"]


# Authorisation


def subject(**overrides: object) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "node-7",
        "kind": "edge_node",
        "roles": ["edge_node"],
        "agency": None,
        "jurisdictions": [],
        "clearance": 0,
        "purpose": None,
        "status": "active",
    }
    return base | overrides


def authz(
    engine: PolicyEngine, who: dict[str, Any], method: str, route: str, **resource: str
) -> AuthzResult:
    request = {"method": method, "route": route, "path": route, "resource": resource}
    raw = decide(
        engine,
        "hub/authz/decision",
        {"subject": who, "request": request, "time": "2026-11-22T10:00:00Z"},
    )
    return typed(raw, AuthzResult)


def police_client(**overrides: object) -> dict[str, Any]:
    return (
        subject(
            id="client-police-north",
            kind="client",
            roles=["agency"],
            agency="police-north",
            jurisdictions=["north"],
            clearance=3,
            purpose="investigation",
        )
        | overrides
    )


def test_edge_node_may_post_events_and_media(engine: PolicyEngine) -> None:
    assert authz(engine, subject(), "POST", "/v1/edge/events") == AuthzResult(
        allow=True, reason="role edge_node may POST /v1/edge/events"
    )
    assert authz(engine, subject(), "POST", "/v1/edge/media/{sha256:str}").allow


def test_revoked_node_is_denied(engine: PolicyEngine) -> None:
    result = authz(engine, subject(status="revoked"), "POST", "/v1/edge/events")
    assert result == AuthzResult(allow=False, reason="subject revoked")


def test_agency_with_wrong_purpose_is_denied(engine: PolicyEngine) -> None:
    result = authz(
        engine, police_client(purpose="marketing"), "GET", "/v1/feeds/{agency:str}/events"
    )
    assert result == AuthzResult(
        allow=False, reason="purpose marketing not allowed on /v1/feeds/**"
    )


def test_agency_in_purpose_reads_own_feed(engine: PolicyEngine) -> None:
    route = "/v1/feeds/{agency:str}/events"
    assert authz(
        engine, police_client(), "GET", route, agency="police-north", jurisdiction="north"
    ).allow
    other = authz(engine, police_client(), "GET", route, agency="transit-authority")
    assert other == AuthzResult(allow=False, reason="resource belongs to another agency")


def test_unknown_route_is_denied(engine: PolicyEngine) -> None:
    admin = subject(id="ada", kind="user", roles=["admin"])
    assert authz(engine, admin, "GET", "/v1/secrets") == AuthzResult(
        allow=False, reason="no rule for route"
    )


@pytest.mark.parametrize("value", [{}, {"subject": {}}, {"request": {}}])
def test_incomplete_input_is_denied(engine: PolicyEngine, value: dict[str, Any]) -> None:
    result = typed(decide(engine, "hub/authz/decision", value), AuthzResult)
    assert result.allow is False
    assert result.reason


def test_quotes_in_input_do_not_break_the_reason(engine: PolicyEngine) -> None:
    # rego-cpp's sprintf would quote these and emit invalid JSON; the policy uses concat.
    odd = police_client(purpose='say "cheese"')
    result = authz(engine, odd, "GET", "/v1/feeds/{agency:str}/events")
    assert result.reason == 'purpose say "cheese" not allowed on /v1/feeds/**'


# Ingest


def ingest_group(**overrides: object) -> dict[str, Any]:
    base: dict[str, Any] = {
        "camera_id": "demo-cam-1",
        "model_name": "demo-synthetic",
        "classes": ["person", "vehicle"],
    }
    return base | overrides


def ingest(
    engine: PolicyEngine, groups: list[dict[str, Any]], status: str = "active"
) -> IngestResult:
    node = {"id": "node-7", "name": "gate-east", "status": status}
    return typed(
        decide(engine, "hub/ingest/decision", {"node": node, "groups": groups}), IngestResult
    )


def test_ingest_gives_one_verdict_per_group_in_order(engine: PolicyEngine) -> None:
    groups = [
        ingest_group(
            camera_id=f"cam-{i}" if i % 3 else "cam-lab-02",
            classes=["dog"] if i % 3 == 1 else ["person"],
        )
        for i in range(60)
    ]
    expected = ["quarantine", "drop", "accept"] * 20
    result = ingest(engine, groups)
    assert [v.action for v in result.groups] == expected
    assert {v.min_confidence for v in result.groups if v.action == "accept"} == {0.5}


def test_revoked_node_has_every_group_dropped(engine: PolicyEngine) -> None:
    result = ingest(engine, [ingest_group(), ingest_group(camera_id="x")], status="revoked")
    assert {(v.action, v.reason) for v in result.groups} == {("drop", "node not active")}


# Release


def record(**overrides: object) -> dict[str, Any]:
    """A detection event (hub.detection.v1) from a central camera: a car, its plate, a person."""
    base: dict[str, Any] = {
        "event_id": "0b9f3d1e-8c1a-4c7e-9f57-3f1f3b0c9a11",
        "camera_id": "demo-cam-2",
        "captured_at": "2026-11-22T10:17:42.512Z",
        "model_name": "demo-synthetic",
        "model_version": "0.1",
        "detections": [
            {
                "label": "vehicle",
                "confidence": 0.91,
                "box": {"x": 0.1, "y": 0.2, "width": 0.3, "height": 0.2},
                "track_id": "v7",
                "attributes": {"vehicle_type": "car"},
            },
            {
                "label": "plate",
                "confidence": 0.88,
                "box": {"x": 0.2, "y": 0.35, "width": 0.06, "height": 0.02},
                "track_id": "v7",
                "attributes": {"plate_text": PLATE},
            },
            {
                "label": "person",
                "confidence": 0.77,
                "box": {"x": 0.6, "y": 0.3, "width": 0.08, "height": 0.3},
                "track_id": "p3",
                "attributes": {},
            },
        ],
        "media": [
            {
                "sha256": "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef",
                "kind": "snapshot",
                "content_type": "image/jpeg",
            }
        ],
    }
    return base | overrides


AGENCIES = {
    "police-north": (["north"], 3, "investigation", "north"),
    "transit-authority": (["central"], 2, "traffic", "central"),
    "city-analytics": (["central"], 1, "statistics", "central"),
}


def release(
    engine: PolicyEngine,
    agency: str,
    *,
    purpose: str | None = None,
    data_class: str = "detection_event",
) -> ReleaseResult:
    jurisdictions, clearance, own_purpose, where = AGENCIES[agency]
    recipient = {
        "id": agency,
        "kind": "agency",
        "jurisdictions": jurisdictions,
        "clearance": clearance,
    }
    value = {
        "recipient": recipient,
        "purpose": purpose or own_purpose,
        "data_class": data_class,
        "record": record(jurisdiction=where),
    }
    return typed(decide(engine, "hub/release/decision", value), ReleaseResult)


def released(result: ReleaseResult, agency: str) -> dict[str, Any]:
    """The record as it would leave the hub for `agency` under `result`."""
    key = recipient_hash_key(b"k" * 32, agency)
    return apply_redactions(record(), result.redactions, hash_key=key).record


def test_three_agencies_receive_what_their_profiles_say(engine: PolicyEngine) -> None:
    police, transit, analytics = (release(engine, a) for a in AGENCIES)
    assert (police.allow, transit.allow, analytics.allow) == (True, True, True)
    assert [m.classes for m in police.media] == [["face"]]
    assert [m.classes for m in transit.media] == [["face", "plate"]]
    assert [m.classes for m in analytics.media] == [["person", "face", "plate"]]

    clear = released(police, "police-north")
    assert clear["detections"][1]["attributes"]["plate_text"] == PLATE
    assert clear["captured_at"] == "2026-11-22T10:17:42.512Z"

    hashed = released(transit, "transit-authority")["detections"][1]["attributes"]["plate_text"]
    assert hashed.startswith("hmac-sha256:")
    assert PLATE not in hashed

    anonymous = released(analytics, "city-analytics")
    assert PLATE not in json.dumps(anonymous)
    assert all("track_id" not in d for d in anonymous["detections"])
    assert anonymous["captured_at"] == "2026-11-22T10:00:00Z"


def test_release_denials_carry_no_obligations(engine: PolicyEngine) -> None:
    wrong = release(engine, "city-analytics", purpose="investigation")
    assert wrong == ReleaseResult(
        allow=False, reason="purpose investigation not allowed for city-analytics"
    )
    pii = release(engine, "transit-authority", data_class="pii_attribute")
    assert (pii.allow, pii.redactions, pii.media) == (False, [], [])


def test_unknown_recipient_is_denied(engine: PolicyEngine) -> None:
    value = {
        "recipient": {"id": "press-office", "kind": "agency"},
        "purpose": "news",
        "data_class": "detection_event",
        "record": record(),
    }
    result = typed(decide(engine, "hub/release/decision", value), ReleaseResult)
    assert result == ReleaseResult(allow=False, reason="unknown recipient")


# Retention


def retention(engine: PolicyEngine, data_class: str, *, legal_hold: bool) -> RetentionResult:
    value = {
        "data_class": data_class,
        "jurisdiction": "north",
        "agency": "police-north",
        "legal_hold": legal_hold,
    }
    return typed(decide(engine, "hub/retention/decision", value), RetentionResult)


def test_legal_hold_wins_in_retention(engine: PolicyEngine) -> None:
    assert retention(engine, "snapshot", legal_hold=False) == RetentionResult(
        keep_days=90, hold=False, reason="90 days (agency police-north override)"
    )
    held = retention(engine, "snapshot", legal_hold=True)
    assert (held.hold, held.keep_days) == (True, 90)


def test_audit_entries_are_kept_longest(engine: PolicyEngine) -> None:
    classes = ["detection_event", "snapshot", "pii_attribute", "delivery_attempt", "decision_log"]
    audit = retention(engine, "audit_entry", legal_hold=False).keep_days
    assert all(retention(engine, c, legal_hold=False).keep_days < audit for c in classes)


# Decision-log mask


def test_mask_covers_plate_text_and_media(engine: PolicyEngine) -> None:
    event = {
        "entrypoint": "hub/release/decision",
        "input": {"recipient": {"id": "police-north"}, "record": record()},
    }
    pointers = decide(engine, "system/log/mask", event)
    masked = apply_redactions(
        event, [Redaction(path=p, op="remove") for p in pointers], hash_key=b"k"
    ).record
    logged = json.dumps(masked)
    assert PLATE not in logged
    assert "5f70bf18" not in logged  # the snapshot reference
    assert '"v7"' not in logged  # track ids link sightings
    assert masked["input"]["record"]["camera_id"] == "demo-cam-2"  # the rest stays explainable


def test_mask_hides_the_whole_input_of_an_unknown_entrypoint(engine: PolicyEngine) -> None:
    assert decide(engine, "system/log/mask", {"entrypoint": "hub/new/decision", "input": {}}) == [
        "/input"
    ]


def test_every_entrypoint_is_defined_for_an_empty_input(engine: PolicyEngine) -> None:
    for entrypoint in ENTRYPOINTS:
        assert decide(engine, entrypoint, {}) is not None


# The runner itself


def test_runner_fails_a_false_test(tmp_path: Path) -> None:
    (tmp_path / "broken.rego").write_text(
        "package broken_test\n\nimport rego.v1\n\n"
        "test_true if true\n\ntest_false if false\n\ntest_one := 1\n"
    )
    report = rego_tests.run_tests(
        {"broken_test.rego": (tmp_path / "broken.rego").read_text()}, "{}"
    )
    outcome = {r.name.rsplit(".", 1)[1]: r.passed for r in report.results}
    assert outcome == {"test_true": True, "test_false": False, "test_one": False}
    assert not report.ok
