"""Media: what the hub knows about each stored image, and the hub's own scan of it.

It owns `media_region` and the scan columns of `media_object`. Every region anyone reports on
an image (each event that references it, and the hub's scan with the edge's models) is kept
per image, so release can blur the union (`hub.policy.release.release_media`). It never
releases an image itself: nothing leaves the hub without passing `release()`.
"""

from hub.media.errors import MediaNotScannedError
from hub.media.schemas import KnownImage, Region, RegionCreate, ScanOutcome
from hub.media.service import (
    EventRegions,
    ScanKit,
    event_regions,
    load_image,
    read_stored,
    request_scans,
    scan_image,
    unscanned,
)

__all__ = [
    "EventRegions",
    "KnownImage",
    "MediaNotScannedError",
    "Region",
    "RegionCreate",
    "ScanKit",
    "ScanOutcome",
    "event_regions",
    "load_image",
    "read_stored",
    "request_scans",
    "scan_image",
    "unscanned",
]
