"""Pure ingest rules: camera ownership and the capture-time window, decided per event."""

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from hub.contracts.detection_v1 import DetectionEvent
from hub.ingest.rules import Screen, screen
from tests.hub.ingest.builders import event

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
OWNED = {"cam-gate-1": "north", "cam-yard": "central"}


def rules(**overrides: Any) -> Screen:
    values: dict[str, Any] = {
        "cameras": OWNED,
        "future_tolerance": timedelta(seconds=300),
        "max_age": timedelta(days=30),
    }
    values.update(overrides)
    return Screen.at(NOW, **values)


def make(**overrides: Any) -> DetectionEvent:
    data = event(captured_at=(NOW - timedelta(minutes=1)).isoformat()) | overrides
    return msgspec.convert(data, DetectionEvent)


def test_events_of_owned_cameras_are_kept_with_the_registry_jurisdiction() -> None:
    events = [make(), make(camera_id="cam-yard")]
    keep, decided = screen(events, rules=rules())
    assert decided == {}
    assert [p.jurisdiction for p in keep] == ["north", "central"]


def test_an_unregistered_camera_is_rejected_alone_with_its_name() -> None:
    good, foreign, also_good = make(), make(camera_id="cam-elsewhere"), make()
    keep, decided = screen([good, foreign, also_good], rules=rules())
    assert [p.event.event_id for p in keep] == [good.event_id, also_good.event_id]
    assert list(decided) == [1]
    assert decided[1].status == "rejected"
    assert decided[1].reason == "camera cam-elsewhere is not registered to this node"


def test_a_node_without_cameras_has_every_event_rejected() -> None:
    keep, decided = screen([make(), make()], rules=rules(cameras={}))
    assert keep == []
    assert {r.status for r in decided.values()} == {"rejected"}


def test_capture_time_window_bounds_are_inclusive() -> None:
    oldest = make(captured_at=(NOW - timedelta(days=30)).isoformat())
    latest = make(captured_at=(NOW + timedelta(seconds=300)).isoformat())
    keep, decided = screen([oldest, latest], rules=rules())
    assert decided == {}
    assert len(keep) == 2


def test_too_old_and_future_capture_times_are_rejected_per_event() -> None:
    old = make(captured_at=(NOW - timedelta(days=30, seconds=1)).isoformat())
    year_one = make(captured_at="0001-01-01T00:00:00Z")
    ahead = make(captured_at=(NOW + timedelta(seconds=301)).isoformat())
    fine = make()
    keep, decided = screen([old, year_one, ahead, fine], rules=rules())
    assert [p.event.event_id for p in keep] == [fine.event_id]
    assert (
        decided[0].reason
        == decided[1].reason
        == ("captured_at is older than 30 days (HUB_INGEST_MAX_AGE_DAYS)")
    )
    assert decided[2].reason == "captured_at is in the future"


def test_the_age_window_follows_the_setting() -> None:
    week_old = make(captured_at=(NOW - timedelta(days=7, minutes=1)).isoformat())
    _, strict = screen([week_old], rules=rules(max_age=timedelta(days=7)))
    keep, lenient = screen([week_old], rules=rules(max_age=timedelta(days=8)))
    assert strict[0].reason == "captured_at is older than 7 days (HUB_INGEST_MAX_AGE_DAYS)"
    assert lenient == {}
    assert len(keep) == 1


def test_a_repeat_of_a_rejected_event_is_rejected_for_the_same_reason() -> None:
    foreign = make(camera_id="cam-elsewhere")
    keep, decided = screen([foreign, foreign], rules=rules())
    assert keep == []
    assert decided[0] == decided[1]
