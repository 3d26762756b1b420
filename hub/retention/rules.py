"""Pure retention decisions: cutoffs from answers, which partitions may go whole."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from hub.ingest.partitions import PARENT, month_start

EVENT_CLASSES = ("detection_event", "snapshot", "pii_attribute")
GLOBAL_CLASSES = ("delivery_attempt", "decision_log", "audit_entry")
NEVER = datetime.min.replace(tzinfo=UTC)  # a cutoff before everything: nothing expires


@dataclass(frozen=True, slots=True)
class Answer:
    """The combined answer for one data class (and camera): keep days, or hold everything."""

    keep_days: int
    hold: bool


@dataclass(slots=True)
class ClassCutoffs:
    """Per-camera cutoffs of one event data class: rows captured before it have expired."""

    by_camera: dict[str, datetime] = field(default_factory=dict)
    days: dict[str, int] = field(default_factory=dict)

    def groups(self) -> dict[datetime, list[str]]:
        """Cameras grouped by cutoff (one delete statement per group); held cameras omitted."""
        found: dict[datetime, list[str]] = {}
        for camera, cutoff in sorted(self.by_camera.items()):
            if cutoff > NEVER:
                found.setdefault(cutoff, []).append(camera)
        return found

    def earliest(self) -> datetime:
        """The oldest cutoff: every camera's rows before it have expired."""
        return min(self.by_camera.values(), default=NEVER)


def combine(answers: Iterable[Answer]) -> Answer:
    """Several applicable answers (jurisdiction, agencies): the longest wins, a hold wins."""
    items = list(answers)
    return Answer(
        keep_days=max((a.keep_days for a in items), default=0),
        hold=any(a.hold for a in items) or not items,
    )


def cutoff_for(answer: Answer, *, now: datetime) -> datetime:
    """Rows before this have expired; NEVER when held."""
    return NEVER if answer.hold else now - timedelta(days=answer.keep_days)


def cutoffs_by_camera(answers: Mapping[str, Answer], *, now: datetime) -> ClassCutoffs:
    """Per-camera cutoffs of one data class."""
    cutoffs = ClassCutoffs()
    for camera, answer in answers.items():
        cutoffs.by_camera[camera] = cutoff_for(answer, now=now)
        cutoffs.days[camera] = answer.keep_days
    return cutoffs


def month_of_partition(name: str) -> date | None:
    """The month of a `detection_event_yYYYYmMM` partition, or None for any other table."""
    prefix = f"{PARENT}_y"
    if not name.startswith(prefix) or len(name) != len(prefix) + 7 or name[-3] != "m":
        return None
    year, month = name[len(prefix) : len(prefix) + 4], name[-2:]
    if not (year.isdigit() and month.isdigit() and 1 <= int(month) <= 12):
        return None
    return date(int(year), int(month), 1)


def partition_bounds(month: date) -> tuple[datetime, datetime]:
    """[low, high) of a monthly partition."""
    nxt = month_start(month, 1)
    return (
        datetime(month.year, month.month, 1, tzinfo=UTC),
        datetime(nxt.year, nxt.month, 1, tzinfo=UTC),
    )


def partition_expired(month: date, *, earliest_cutoff: datetime) -> bool:
    """A whole month has expired when its upper bound is at or before every camera's cutoff."""
    return partition_bounds(month)[1] <= earliest_cutoff
