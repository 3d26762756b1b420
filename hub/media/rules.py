"""Pure rules of media: which regions an event tells about the images it references."""

from collections.abc import Iterable
from uuid import UUID

from hub.contracts.detection_v1 import BoundingBox, DetectionEvent
from hub.media.schemas import WHOLE_IMAGE, Region, RegionCreate


def regions_of(events: Iterable[DetectionEvent], *, node_id: UUID) -> list[RegionCreate]:
    """Every region the events report on the images they reference.

    A snapshot gets each detection's box. A crop has no coordinates within its frame and the
    contract does not say which detection it shows, so each class of the event covers the
    whole crop: a crop of a class a recipient must have blurred is blurred whole.
    """
    found: list[RegionCreate] = []
    node = str(node_id)  # once, not per region
    for event in events:
        for media in event.media:
            if media.kind == "crop":
                labels = sorted({d.label for d in event.detections})
                boxes = [(label, WHOLE_IMAGE) for label in labels]
            else:
                boxes = [(d.label, d.box) for d in event.detections]
            event_id = str(event.event_id)
            found.extend(
                _edge(media.sha256, label, box, node_id=node, event_id=event_id)
                for label, box in boxes
            )
    return found


def _edge(
    sha256: str, label: str, box: BoundingBox, *, node_id: str, event_id: str
) -> RegionCreate:
    return RegionCreate(
        sha256=sha256,
        region=Region(label=label, box=box, source="edge"),
        node_id=node_id,
        event_id=event_id,
    )


def normalised(box: tuple[float, float, float, float], *, width: int, height: int) -> BoundingBox:
    """A pixel box (x1, y1, x2, y2) as a normalised one, clipped to the image."""
    x1 = min(max(box[0] / width, 0.0), 1.0)
    y1 = min(max(box[1] / height, 0.0), 1.0)
    x2 = min(max(box[2] / width, x1), 1.0)
    y2 = min(max(box[3] / height, y1), 1.0)
    return BoundingBox(x=x1, y=y1, width=x2 - x1, height=y2 - y1)
