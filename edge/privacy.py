"""Redaction at the source: privacy masks and classes burned into a frame on the camera box.

Masks (polygons in normalised coordinates) are blacked out before detection, so what lies
under them never reaches a detector, the spool or the hub. Boxes of the `redact_at_source`
classes are blacked out after detection, in the frame every snapshot and crop is cut from:
redaction belongs to the image, so a plate event's snapshot also hides the faces the face
detector found in the same frame. Solid fill, not blur: nothing can be recovered from it.
"""

from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray
from PIL import Image as PILImage
from PIL import ImageDraw

from edge.config import PrivacySection
from edge.detectors.base import Found, Image

Mask = NDArray[np.bool_]
Point = tuple[float, float]
FILL = 0  # black


class Redactor:
    """Burns one camera's masks and classes into its frames (a mask raster per frame size)."""

    def __init__(self, section: PrivacySection) -> None:
        """Keep the section; rasters are drawn on first use of each frame size."""
        self.classes = frozenset(section.redact_at_source)
        self.polygons = [m.polygon for m in section.masks]
        self._rasters: dict[tuple[int, int], Mask] = {}

    @property
    def active(self) -> bool:
        """Whether this camera redacts anything at all."""
        return bool(self.classes or self.polygons)

    def mask(self, image: Image) -> Image:
        """The frame with the privacy masks blacked out (the frame itself when there are none)."""
        if not self.polygons:
            return image
        size = (image.shape[1], image.shape[0])
        raster = self._rasters.get(size)
        if raster is None:
            raster = self._rasters[size] = polygon_raster(self.polygons, size)
        masked = image.copy()
        masked[raster] = FILL
        return masked

    def redact(self, image: Image, found: Iterable[Found]) -> Image:
        """The frame with every detection of a redacted class blacked out."""
        boxes = [f.box for f in found if f.label in self.classes]
        return fill_boxes(image, boxes) if boxes else image


def polygon_raster(polygons: Sequence[Sequence[Point]], size: tuple[int, int]) -> Mask:
    """Which pixels of a `size` (width, height) frame the polygons cover, edges included."""
    width, height = size
    canvas = PILImage.new("1", size, 0)
    draw = ImageDraw.Draw(canvas)
    for polygon in polygons:
        points = [(x * (width - 1), y * (height - 1)) for x, y in polygon]
        draw.polygon(points, fill=1, outline=1)
    return np.asarray(canvas, dtype=bool)


def fill_boxes(image: Image, boxes: Sequence[tuple[float, float, float, float]]) -> Image:
    """A copy with each pixel box (x1, y1, x2, y2) filled; partial pixels count as covered."""
    out = image.copy()
    height, width = image.shape[:2]
    for x1, y1, x2, y2 in boxes:
        left, top = max(int(np.floor(x1)), 0), max(int(np.floor(y1)), 0)
        right, bottom = min(int(np.ceil(x2)), width), min(int(np.ceil(y2)), height)
        out[top:bottom, left:right] = FILL
    return out
