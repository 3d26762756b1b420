"""Face landmarks follow the face, end to end: a record as the edge's CenterFace detector
sends it, decided by the default bundle (rego-cpp) and redacted by the hub's own code."""

from typing import Any

import msgspec
import pytest

from hub.policy.bundle import load_bundle_dir
from hub.policy.engines import load_engine
from hub.policy.ports import PolicyEngine
from hub.policy.redaction import apply_redactions, recipient_hash_key
from hub.policy.schemas import ReleaseResult
from tests.policies.test_bundle import BUNDLE

LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
FACE_ATTRIBUTES = {f"{p}_{axis}": 0.41 for p in LANDMARKS for axis in ("x", "y")}
AGENCIES = {
    "police-north": (["north"], 3, "investigation", "demo-cam-1"),
    "transit-authority": (["central"], 2, "traffic", "demo-cam-2"),
    "city-analytics": (["central"], 1, "statistics", "demo-cam-2"),
}


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    """The default bundle as the hub loads it."""
    return load_engine(load_bundle_dir(BUNDLE))


def face_record(camera_id: str) -> dict[str, Any]:
    """A face with its five CenterFace landmarks, and a plate, as stored at ingest."""
    box = {"x": 0.4, "y": 0.2, "width": 0.1, "height": 0.15}
    return {
        "event_id": "6f1c1d2e-0000-4000-8000-000000000001",
        "camera_id": camera_id,
        "captured_at": "2026-11-22T10:17:42.512Z",
        "model_name": "centerface",
        "model_version": "1",
        "detections": [
            {"label": "face", "confidence": 0.9, "box": box, "attributes": FACE_ATTRIBUTES},
            {
                "label": "plate",
                "confidence": 0.8,
                "box": box,
                "attributes": {"plate_text": "AB-123-CD"},
            },
        ],
    }


def release_to(engine: PolicyEngine, agency: str) -> dict[str, Any]:
    jurisdictions, clearance, purpose, camera = AGENCIES[agency]
    value = {
        "recipient": {
            "id": agency,
            "kind": "agency",
            "jurisdictions": jurisdictions,
            "clearance": clearance,
        },
        "purpose": purpose,
        "data_class": "detection_event",
        "record": face_record(camera),
    }
    raw = engine.evaluate("hub/release/decision", msgspec.json.encode(value))
    result = msgspec.json.decode(raw, type=ReleaseResult)
    assert result.allow, result.reason
    key = recipient_hash_key(b"k" * 32, agency)
    return apply_redactions(face_record(camera), result.redactions, hash_key=key).record


@pytest.mark.parametrize("agency", list(AGENCIES))
def test_no_recipient_whose_faces_are_blurred_gets_face_landmarks(
    engine: PolicyEngine, agency: str
) -> None:
    face, plate = release_to(engine, agency)["detections"]
    assert face["label"] == "face"
    assert face["attributes"] == {}
    assert face["box"] == face_record("x")["detections"][0]["box"]  # the blur needs the box
    # Only the face's geometry goes: other attributes follow their own rules.
    if agency == "police-north":
        assert plate["attributes"] == {"plate_text": "AB-123-CD"}
