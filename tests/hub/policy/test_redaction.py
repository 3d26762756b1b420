"""The redaction operators, pure."""

import copy
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.policy.redaction import (
    Redacted,
    apply_plan,
    apply_redactions,
    plan_redactions,
    recipient_hash_key,
)
from hub.policy.schemas import Redaction

KEY = recipient_hash_key(b"k" * 32, "police-north")


def record() -> dict[str, Any]:
    return {
        "event_id": "e1",
        "captured_at": "2026-11-22T10:47:31.250000+00:00",
        "location": {"lat": 52.370216, "lon": 4.895168},
        "detections": [
            {"label": "person", "track_id": "p1", "attributes": {}},
            {"label": "plate", "track_id": "v2", "attributes": {"plate_text": "AB-123-CD"}},
        ],
    }


def test_remove_under_a_wildcard_touches_only_existing_values() -> None:
    out = apply_redactions(
        record(), [Redaction(path="/detections/*/attributes/plate_text", op="remove")], hash_key=KEY
    )
    assert out.record["detections"][1]["attributes"] == {}
    assert [(m.path, m.op) for m in out.manifest] == [
        ("/detections/1/attributes/plate_text", "remove")
    ]


def test_mask_keeps_at_most_half() -> None:
    masked = apply_redactions(
        record(),
        [Redaction(path="/detections/1/attributes/plate_text", op="mask", params={"keep_last": 2})],
        hash_key=KEY,
    )
    assert masked.record["detections"][1]["attributes"]["plate_text"] == "*******CD"
    greedy = apply_redactions(
        record(), [Redaction(path="/event_id", op="mask", params={"keep_last": 9})], hash_key=KEY
    )
    assert greedy.record["event_id"] == "*1"


def test_hash_links_within_one_recipient_only() -> None:
    rule = [Redaction(path="/detections/*/attributes/plate_text", op="hash")]
    a1 = apply_redactions(record(), rule, hash_key=KEY).record
    a2 = apply_redactions(record(), rule, hash_key=KEY).record
    other = apply_redactions(
        record(), rule, hash_key=recipient_hash_key(b"k" * 32, "transit")
    ).record
    value = a1["detections"][1]["attributes"]["plate_text"]
    assert value.startswith("hmac-sha256:")
    assert "AB-123-CD" not in value
    assert value == a2["detections"][1]["attributes"]["plate_text"]
    assert value != other["detections"][1]["attributes"]["plate_text"]


def test_generalize_rounds_time_and_location() -> None:
    out = apply_redactions(
        record(),
        [
            Redaction(path="/captured_at", op="generalize", params={"time_seconds": 3600}),
            Redaction(path="/location/lat", op="generalize", params={"decimals": 2}),
            Redaction(path="/location/lon", op="generalize", params={"decimals": 2}),
        ],
        hash_key=KEY,
    ).record
    assert out["captured_at"] == "2026-11-22T10:00:00Z"
    assert out["location"] == {"lat": 52.37, "lon": 4.89}


def test_a_value_that_cannot_be_generalized_is_withheld() -> None:
    out = apply_redactions(
        record(),
        [Redaction(path="/event_id", op="generalize", params={"decimals": 1})],
        hash_key=KEY,
    ).record
    assert out["event_id"] is None


def test_the_input_record_is_never_modified() -> None:
    original = record()
    apply_redactions(original, [Redaction(path="/detections", op="remove")], hash_key=KEY)
    assert original == record()


def test_pointer_escapes_and_missing_paths() -> None:
    data = {"a/b": {"~x": 1}, "list": [1, 2]}
    out = apply_redactions(
        data,
        [
            Redaction(path="/a~1b/~0x", op="remove"),
            Redaction(path="/list/5", op="remove"),
            Redaction(path="/list/1", op="remove"),
        ],
        hash_key=KEY,
    )
    assert out.record == {"a/b": {}, "list": [1, None]}
    assert [m.path for m in out.manifest] == ["/a~1b/~0x", "/list/1"]


def test_later_redactions_see_what_earlier_ones_changed() -> None:
    """Parents are walked once per parent pointer; a change above a walked parent must not
    leave a later redaction working on a node that is gone or replaced."""
    out = apply_redactions(
        record(),
        [
            Redaction(path="/detections/*/track_id", op="hash"),
            Redaction(path="/detections/*/attributes", op="remove"),
            Redaction(path="/detections/*/attributes/plate_text", op="hash"),
            Redaction(path="/location", op="hash"),
            Redaction(path="/location/lat", op="remove"),
            Redaction(path="/detections/1", op="remove"),
            Redaction(path="/detections/*/label", op="mask"),
        ],
        hash_key=KEY,
    )
    assert [(m.path, m.op) for m in out.manifest] == [
        ("/detections/0/track_id", "hash"),
        ("/detections/1/track_id", "hash"),
        ("/detections/0/attributes", "remove"),
        ("/detections/1/attributes", "remove"),
        ("/location", "hash"),
        ("/detections/1", "remove"),
        ("/detections/0/label", "mask"),
    ]
    assert out.record["location"].startswith("hmac-sha256:")
    assert out.record["detections"][1] is None
    assert out.record["detections"][0]["label"] == "******"
    assert "attributes" not in out.record["detections"][0]


def test_many_leaves_under_one_parent_each_reach_every_match() -> None:
    data = record()
    data["detections"][0]["attributes"] = {"nose_x": 1, "nose_y": 2}
    landmarks = ["nose_x", "nose_y", "mouth_left_x", "plate_text"]
    out = apply_redactions(
        data,
        [Redaction(path=f"/detections/*/attributes/{name}", op="remove") for name in landmarks],
        hash_key=KEY,
    )
    assert [m.path for m in out.manifest] == [
        "/detections/0/attributes/nose_x",
        "/detections/0/attributes/nose_y",
        "/detections/1/attributes/plate_text",
    ]
    assert [d["attributes"] for d in out.record["detections"]] == [{}, {}]


def test_one_plan_redacts_many_records_each_as_apply_redactions_would() -> None:
    redactions = [
        Redaction(path="/detections/*/attributes/plate_text", op="hash"),
        Redaction(path="/captured_at", op="generalize", params={"time_seconds": 3600}),
        Redaction(path="/detections/*/track_id", op="remove"),
    ]
    plan = plan_redactions(redactions, hash_key=KEY)
    first, second = record(), record()
    second["detections"].append({"label": "plate", "attributes": {"plate_text": "ZZ-9"}})
    for data in (first, second):
        expected = apply_redactions(data, redactions, hash_key=KEY)
        got = apply_plan(data, plan)
        assert (got.record, got.manifest) == (expected.record, expected.manifest)
    assert len(apply_plan(record(), plan).manifest) == 4


def test_a_change_elsewhere_keeps_a_walk_and_a_change_above_it_forgets_it() -> None:
    out = apply_redactions(
        record(),
        [
            Redaction(path="/detections/*/track_id", op="mask"),
            Redaction(path="/captured_at", op="generalize", params={"time_seconds": 3600}),
            Redaction(path="/detections/*/label", op="mask"),  # the same walk, still good
            Redaction(path="/detections/0", op="hash"),  # replaces a node of that walk
            Redaction(path="/detections/*/label", op="remove"),  # so it is walked again
        ],
        hash_key=KEY,
    )
    assert [(m.path, m.op) for m in out.manifest] == [
        ("/detections/0/track_id", "mask"),
        ("/detections/1/track_id", "mask"),
        ("/captured_at", "generalize"),
        ("/detections/0/label", "mask"),
        ("/detections/1/label", "mask"),
        ("/detections/0", "hash"),
        ("/detections/1/label", "remove"),
    ]
    assert out.record["detections"][0].startswith("hmac-sha256:")
    assert "label" not in out.record["detections"][1]


def test_a_run_of_fields_under_one_parent_is_skipped_only_when_none_is_there() -> None:
    redactions = [
        Redaction(path="/detections/*/track_id", op="mask"),
        *(Redaction(path=f"/detections/*/attributes/{n}", op="remove") for n in ("a", "b")),
        Redaction(path="/detections/*/attributes/c", op="hash"),
    ]
    plan = plan_redactions(redactions, hash_key=KEY)
    absent, odd, present = record(), record(), record()
    present["detections"][1]["attributes"] = {"b": 1, "c": "x"}
    odd["detections"][0]["attributes"] = ["a", "b"]  # not an object: names nothing
    for data in (absent, odd, present):
        # One redaction at a time (plans of one step are never skipped), on a copy.
        expected = Redacted(record=copy.deepcopy(data), manifest=[])
        for redaction in redactions:
            step = apply_redactions(expected.record, [redaction], hash_key=KEY, copy=False)
            expected.manifest.extend(step.manifest)
        assert apply_plan(data, plan) == expected
    assert [(m.path, m.op) for m in expected.manifest] == [
        ("/detections/0/track_id", "mask"),
        ("/detections/1/track_id", "mask"),
        ("/detections/1/attributes/b", "remove"),
        ("/detections/1/attributes/c", "hash"),
    ]


def test_a_plan_without_a_manifest_redacts_the_same() -> None:
    redactions = [
        Redaction(path="/detections/*/attributes/plate_text", op="hash"),
        Redaction(path="/detections/*/track_id", op="remove"),
    ]
    plan = plan_redactions(redactions, hash_key=KEY)
    listed, unlisted = apply_plan(record(), plan), apply_plan(record(), plan, manifest=False)
    assert unlisted.record == listed.record
    assert unlisted.manifest == []
    assert len(listed.manifest) == 3


TOKENS = ["detections", "attributes", "plate_text", "track_id", "captured_at", "*", "0", "1"]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(-90, 90, allow_nan=False),
    st.sampled_from(["AB-1", "2026-11-22T10:47:31+00:00", "x"]),
)
DOCUMENTS = st.recursive(
    VALUES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(TOKENS[:5]), inner, max_size=4)
    ),
    max_leaves=12,
)
REDACTIONS = st.builds(
    lambda tokens, op: Redaction(
        path="".join("/" + t for t in tokens),
        op=op,
        params={"time_seconds": 3600} if op == "generalize" else {},
    ),
    st.lists(st.sampled_from(TOKENS), min_size=1, max_size=4),
    st.sampled_from(["remove", "mask", "hash", "generalize"]),
)


@settings(max_examples=400, deadline=None)
@given(
    document=st.dictionaries(st.sampled_from(TOKENS[:5]), DOCUMENTS, max_size=4),
    redactions=st.lists(REDACTIONS, min_size=1, max_size=5),
)
def test_a_plan_walked_as_one_tree_redacts_as_its_steps_one_by_one(
    document: dict[str, Any], redactions: list[Redaction]
) -> None:
    plan = plan_redactions(redactions, hash_key=KEY)
    stepwise = plan._replace(tree=None)
    tree = apply_plan(copy.deepcopy(document), plan, manifest=False).record
    assert tree == apply_plan(copy.deepcopy(document), stepwise, manifest=False).record


def test_a_recipient_profile_plan_is_walked_as_one_tree() -> None:
    redactions = [
        Redaction(path="/detections/*/attributes/plate_text", op="remove"),
        Redaction(path="/detections/*/track_id", op="remove"),
        Redaction(path="/captured_at", op="generalize", params={"time_seconds": 3600}),
        *(Redaction(path=f"/detections/*/attributes/lm_{i}", op="remove") for i in range(10)),
    ]
    plan = plan_redactions(redactions, hash_key=KEY)
    assert plan.tree is not None
    got = apply_plan(record(), plan, manifest=False).record
    assert got == apply_redactions(record(), redactions, hash_key=KEY).record
    assert got["captured_at"] == "2026-11-22T10:00:00Z"
    assert [d.get("track_id") for d in got["detections"]] == [None, None]
    # Overlapping or indexed pointers keep the step-by-step walk.
    for path in ("/detections/0/label", "/detections/*"):
        mixed = plan_redactions([*redactions, Redaction(path=path, op="mask")], hash_key=KEY)
        assert mixed.tree is None


def _round_by_timestamp(value: str, seconds: int) -> str:
    moment = datetime.fromisoformat(value).astimezone(UTC)
    step = max(seconds, 1)
    floored = math.floor(moment.timestamp() / step) * step
    return datetime.fromtimestamp(floored, tz=UTC).isoformat().replace("+00:00", "Z")


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(1900, 1, 1),  # noqa: DTZ001 (hypothesis wants naive bounds)
        max_value=datetime(2200, 1, 1),  # noqa: DTZ001
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=2)), timezone(-timedelta(hours=5))]
        ),
    ),
    seconds=st.sampled_from([0, 1, 7, 60, 90, 300, 900, 3600, 7200, 86400, 172800]),
    zulu=st.booleans(),
)
def test_time_generalization_floors_on_the_epoch_in_utc(
    moment: datetime, seconds: int, zulu: bool
) -> None:
    value = moment.isoformat()
    if zulu:
        value = value.replace("+00:00", "Z")
    out = apply_redactions(
        {"t": value},
        [Redaction(path="/t", op="generalize", params={"time_seconds": seconds})],
        hash_key=KEY,
    )
    assert out.record["t"] == _round_by_timestamp(value, seconds)
