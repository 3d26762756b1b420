"""A simple IoU tracker: one person walking past is one track, reported when it matters.

Detections match the live track of the same label they overlap most (greedy, best IoU first).
A track is reported when it appears and again only on a significant change: it moved away
from where it was last reported, its confidence rose clearly, or its attributes (a plate's
reading) changed. A track unseen for more than `max_missed` frames ends.
"""

import itertools
import secrets
from dataclasses import dataclass, field

from edge.detectors.base import AttributeValue, Found, box_iou

SIGNIFICANT_ATTRIBUTES = ("plate_text",)


@dataclass(slots=True)
class Track:
    """A tracked object and what was last reported about it."""

    track_id: str
    current: Found
    reported: Found
    missed: int = 0
    hits: int = 1


@dataclass(frozen=True, slots=True)
class Sighting:
    """A detection worth an event, with its track and why it is reported."""

    track_id: str
    found: Found
    reason: str  # "new" or "changed"


@dataclass(slots=True)
class IouTracker:
    """Tracks for one camera and one detector."""

    match_iou: float = 0.3
    max_missed: int = 5
    moved_iou: float = 0.5
    confidence_gain: float = 0.15
    prefix: str = field(default_factory=lambda: secrets.token_hex(3))
    tracks: list[Track] = field(default_factory=list)
    _numbers: "itertools.count[int]" = field(default_factory=lambda: itertools.count(1))

    def update(self, found: list[Found]) -> list[Sighting]:
        """Feed one frame's detections; the sightings to report for it."""
        matches = self._match(found)
        sightings: list[Sighting] = []
        matched_tracks = set()
        for index, detection in enumerate(found):
            track = matches.get(index)
            if track is None:
                track = Track(self._new_id(), current=detection, reported=detection)
                self.tracks.append(track)
                sightings.append(Sighting(track.track_id, detection, "new"))
            else:
                track.current, track.missed = detection, 0
                track.hits += 1
                if self._changed(track.reported, detection):
                    track.reported = detection
                    sightings.append(Sighting(track.track_id, detection, "changed"))
            matched_tracks.add(id(track))
        for track in self.tracks:
            if id(track) not in matched_tracks:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        return sightings

    def _match(self, found: list[Found]) -> dict[int, Track]:
        pairs = [
            (box_iou(track.current.box, detection.box), number, index)
            for number, track in enumerate(self.tracks)
            for index, detection in enumerate(found)
            if track.current.label == detection.label
        ]
        pairs.sort(reverse=True)
        used_tracks: set[int] = set()
        matches: dict[int, Track] = {}
        for overlap, number, index in pairs:
            if overlap < self.match_iou:
                break
            if number in used_tracks or index in matches:
                continue
            used_tracks.add(number)
            matches[index] = self.tracks[number]
        return matches

    def _changed(self, reported: Found, now: Found) -> bool:
        if box_iou(reported.box, now.box) < self.moved_iou:
            return True
        if now.confidence - reported.confidence >= self.confidence_gain:
            return True
        return any(_attribute(reported, k) != _attribute(now, k) for k in SIGNIFICANT_ATTRIBUTES)

    def _new_id(self) -> str:
        return f"{self.prefix}-{next(self._numbers)}"


def _attribute(found: Found, key: str) -> AttributeValue | None:
    return found.attributes.get(key)
