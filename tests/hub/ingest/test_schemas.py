"""The fast decoding types of a batch: the contract's types minus two patterns, checked after.

Whatever path a body takes, its events must get the verdicts and the canonical JSON the
contract's own types give them."""

from typing import Any

import msgspec
import pytest

from hub.contracts import detection_v1 as contract
from hub.ingest import schemas
from hub.ingest.routes import decode_batch
from hub.ingest.rules import CANONICAL, unchecked_text_valid
from tests.hub.ingest.builders import batch, event

LABEL = r"^[a-z0-9_.\-]+$"
SKIPPED = {contract.NO_NUL, LABEL}  # the patterns the unchecked types leave to the check
TWINS = {
    schemas.UncheckedEvent: contract.DetectionEvent,
    schemas.UncheckedDetection: contract.Detection,
    schemas.UncheckedMediaRef: contract.MediaRef,
}


def _shape(info: Any) -> Any:
    """A type's description with the skipped patterns and the twins' names taken out."""
    if isinstance(info, msgspec.inspect.StrType) and info.pattern in SKIPPED:
        info = msgspec.structs.replace(info, pattern=None)
    if isinstance(info, type):
        return TWINS.get(info, info).__name__
    if isinstance(info, tuple):
        return tuple(_shape(item) for item in info)
    if isinstance(info, msgspec.Struct):
        fields = msgspec.structs.fields(info)
        return (type(info).__name__, {f.name: _shape(getattr(info, f.name)) for f in fields})
    return info


@pytest.mark.parametrize("twin", list(TWINS), ids=lambda t: t.__name__)
def test_each_unchecked_type_is_its_contract_type_without_the_two_patterns(twin: type) -> None:
    ours, theirs = msgspec.inspect.type_info(twin), msgspec.inspect.type_info(TWINS[twin])
    assert _shape(ours) == _shape(theirs)
    assert ours != theirs  # the patterns are really gone (else the twin is pointless)


def test_an_all_valid_batch_decodes_once_to_the_contract_types_and_bytes() -> None:
    events = [event(), event(media=[{"sha256": "a" * 64, "redacted_classes": ["face"]}])]
    body = batch(*events)
    decoded = decode_batch(body, max_events=500)
    strict = [msgspec.convert(e, contract.DetectionEvent) for e in events]
    assert decoded.refused == {}
    assert all(type(e) is schemas.UncheckedEvent for e in decoded.valid)  # the fast path
    assert [CANONICAL.encode(e) for e in decoded.valid] == [CANONICAL.encode(e) for e in strict]


def _detection(**overrides: Any) -> dict[str, Any]:
    return event()["detections"][0] | overrides


def _contract_error(data: dict[str, Any]) -> str | None:
    """What the contract's own types say of an event (None: valid)."""
    try:
        msgspec.convert(data, contract.DetectionEvent)
    except msgspec.ValidationError as exc:
        return str(exc)
    return None


CASES = {
    "NUL in the model version": event(model_version="1.\x000"),
    "NUL in a track id": event(detections=[_detection(track_id="t\x001")]),
    "NUL in an attribute": event(detections=[_detection(attributes={"plate_text": "A\x00"})]),
    "upper-case label": event(detections=[_detection(label="Person")]),
    "label with a space": event(detections=[_detection(label="a person")]),
    "bad attribute name": event(detections=[_detection(attributes={"Plate Text": "AB"})]),
    "bad redacted class": event(media=[{"sha256": "b" * 64, "redacted_classes": ["Face"]}]),
    # Python's `$` matches before a final newline, so the contract accepts this label: the
    # check refuses it and the contract's types decide (accepted, as before).
    "label ending in a newline": event(detections=[_detection(label="person\n")]),
}


@pytest.mark.parametrize("bad", list(CASES.values()), ids=list(CASES))
def test_what_the_unchecked_types_skip_is_judged_by_the_contract_event_by_event(
    bad: dict[str, Any],
) -> None:
    good = event()
    body = batch(good, bad, good | {"event_id": event()["event_id"]})
    decoded = decode_batch(body, max_events=500)
    error = _contract_error(bad)
    if error is None:
        assert decoded.refused == {}
        assert len(decoded.valid) == 3
    else:
        assert set(decoded.refused) == {1}
        assert decoded.refused[1].reason == f"invalid event: {error}".replace("`$", "`$.events[1]")
        assert len(decoded.valid) == 2
    assert all(type(e) is contract.DetectionEvent for e in decoded.valid)  # the strict path


def test_the_check_passes_clean_text_and_catches_each_skipped_pattern() -> None:
    def valid(*events: dict[str, Any]) -> bool:
        body = batch(*events)
        unchecked = msgspec.json.decode(body, type=schemas.UncheckedBatch)
        return unchecked_text_valid(body, unchecked.events)

    assert valid(event(), event(media=[{"sha256": "c" * 64, "redacted_classes": ["plate"]}]))
    assert all(not valid(event(), case) for case in CASES.values())
