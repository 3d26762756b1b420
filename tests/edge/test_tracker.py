"""The IoU tracker: one object passing by is one track and one event, not one per frame."""

from edge.detectors import Found
from edge.tracker import IouTracker


def person(x: float, *, confidence: float = 0.8, label: str = "person") -> Found:
    return Found(label, confidence, (x, 100.0, x + 60.0, 260.0))


def test_walking_past_is_one_track_reported_on_appearance_and_on_moving_away() -> None:
    tracker = IouTracker(moved_iou=0.5)
    reports = [tracker.update([person(100.0 + 8 * step)]) for step in range(20)]
    sightings = [s for frame in reports for s in frame]
    assert len({s.track_id for s in sightings}) == 1
    assert sightings[0].reason == "new"
    # 152 px travelled by a 60 px wide box: IoU with the last report drops below 0.5 after
    # more than 20 px, so every third step (24 px) is a change; 19 frames say nothing new.
    assert len(sightings) == 1 + 152 // 24
    assert all(s.reason == "changed" for s in sightings[1:])


def test_a_standing_object_is_reported_once() -> None:
    tracker = IouTracker()
    reports = [tracker.update([person(300.0)]) for _ in range(30)]
    assert sum(len(r) for r in reports) == 1


def test_two_objects_get_two_tracks_and_labels_do_not_mix() -> None:
    tracker = IouTracker()
    first = tracker.update([person(100.0), person(400.0), person(100.0, label="face")])
    assert len({s.track_id for s in first}) == 3
    assert tracker.update([person(102.0), person(402.0), person(101.0, label="face")]) == []


def test_a_lost_track_ends_and_a_return_is_a_new_appearance() -> None:
    tracker = IouTracker(max_missed=2)
    (first,) = tracker.update([person(100.0)])
    for _ in range(3):
        assert tracker.update([]) == []
    (again,) = tracker.update([person(100.0)])
    assert again.reason == "new"
    assert again.track_id != first.track_id


def test_a_short_gap_keeps_the_track() -> None:
    tracker = IouTracker(max_missed=2)
    tracker.update([person(100.0)])
    tracker.update([])
    assert tracker.update([person(101.0)]) == []


def test_confidence_gain_and_a_new_plate_reading_are_significant() -> None:
    tracker = IouTracker(confidence_gain=0.15)
    tracker.update([person(100.0, confidence=0.5)])
    assert tracker.update([person(100.0, confidence=0.6)]) == []
    (gain,) = tracker.update([person(100.0, confidence=0.7)])
    assert gain.reason == "changed"
    plate = Found("plate", 0.9, (10.0, 10.0, 90.0, 30.0), {"plate_text": "AB-12"})
    tracker.update([plate])
    read = Found("plate", 0.9, (10.0, 10.0, 90.0, 30.0), {"plate_text": "AB-123-CD"})
    (changed,) = tracker.update([read])
    assert changed.found.attributes["plate_text"] == "AB-123-CD"
