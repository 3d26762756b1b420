"""What the hub knows about a stored image: its file, whether it was scanned, its regions."""

from typing import Literal

import msgspec

from hub.contracts.detection_v1 import BoundingBox

Source = Literal["edge", "hub"]
WHOLE_IMAGE = BoundingBox(x=0.0, y=0.0, width=1.0, height=1.0)


class Region(msgspec.Struct, frozen=True, kw_only=True):
    """One region of one class on an image, and who reported it."""

    label: str
    box: BoundingBox
    source: Source


class RegionCreate(msgspec.Struct, frozen=True, kw_only=True):
    """A region to record; edge regions name the event that reported them."""

    sha256: str
    region: Region
    node_id: str | None = None
    event_id: str | None = None


class KnownImage(msgspec.Struct, frozen=True, kw_only=True):
    """A stored image with every region known on it. `scanned` is true only once the hub's
    own scan succeeded on it; until then the regions are the edge's alone. `pending`: the
    scan has not run yet (false after a failed scan, which running again would not mend)."""

    sha256: str
    content_type: str
    storage_path: str
    scanned: bool
    regions: list[Region]
    pending: bool = False


class ScanOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What one scan did (the arq job's result)."""

    sha256: str
    status: Literal["scanned", "failed", "skipped", "missing"]
    regions: int = 0
    cpu_ms: float = 0.0
