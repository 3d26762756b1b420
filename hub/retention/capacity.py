"""Disk-pressure guard: past the threshold the hub refuses new media and alerts; it never
deletes anything (held data least of all) to make room."""

import shutil
from dataclasses import dataclass
from pathlib import Path

import structlog
from prometheus_client import Counter

from hub.retention.errors import InsufficientStorageError

log = structlog.get_logger("hub.retention.capacity")

REFUSED = Counter(
    "hub_media_refused_disk_pressure_total", "Media uploads refused because the disk is full"
)


@dataclass(frozen=True, slots=True)
class CapacityGuard:
    """Checks the media volume before a media upload is written."""

    folder: Path
    max_used_percent: float

    def used_percent(self) -> float:
        """How full the volume holding the media folder is (nearest existing ancestor)."""
        where = self.folder
        while not where.exists() and where != where.parent:
            where = where.parent
        usage = shutil.disk_usage(where)
        return 100.0 * usage.used / usage.total if usage.total else 100.0

    def check(self) -> None:
        """Raise `InsufficientStorageError` (507) when the volume is past the threshold."""
        used = self.used_percent()
        if used >= self.max_used_percent:
            REFUSED.inc()
            log.warning(
                "disk pressure: media refused",
                used_percent=round(used, 1),
                threshold=self.max_used_percent,
                alert="MediaDiskPressure",
            )
            raise InsufficientStorageError(
                f"media storage is {used:.0f}% full (limit {self.max_used_percent:g}%); "
                "retry later",
                code="insufficient_storage",
                extra={"used_percent": round(used, 1)},
            )
