"""The matrix's frame: one snapshot with a face and a licence plate, and pixel measures that
say whether a region reached a recipient blurred or as it was."""

import hashlib
import io
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageStat

from tests.hub.media.builders import FACE_BOX, PLATE_BOX, PLATE_TEXT, unique_frame

__all__ = ["FACE", "PLATE", "PLATE_TEXT", "frame", "measure"]


@dataclass(frozen=True, slots=True)
class Region:
    """A box in normalised coordinates (as events carry it)."""

    x: float
    y: float
    width: float
    height: float

    def box(self) -> dict[str, float]:
        """The box as a detection carries it."""
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height}

    def pixels(self, size: tuple[int, int]) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) in an image of `size`."""
        w, h = size
        return (
            round(self.x * w),
            round(self.y * h),
            round((self.x + self.width) * w),
            round((self.y + self.height) * h),
        )


# The demo camera's frame 00 (what `hub up` shows): a real face above a rendered plate.
FACE = Region(x=FACE_BOX.x, y=FACE_BOX.y, width=FACE_BOX.width, height=FACE_BOX.height)
PLATE = Region(x=PLATE_BOX.x, y=PLATE_BOX.y, width=PLATE_BOX.width, height=PLATE_BOX.height)


def frame() -> tuple[bytes, str]:
    """The demo frame in a PNG of its own (unique hash per test) and its SHA-256."""
    data = unique_frame()
    return data, hashlib.sha256(data).hexdigest()


def _crop(data: bytes, region: Region, size: tuple[int, int]) -> Image.Image:
    image = Image.open(io.BytesIO(data)).convert("L")
    assert image.size == size, f"released image has size {image.size}, stored {size}"
    return image.crop(region.pixels(image.size))


def detail(image: Image.Image) -> float:
    """Mean absolute difference between horizontally neighbouring pixels (edges, text)."""
    shifted = ImageChops.offset(image, 1, 0)
    return float(ImageStat.Stat(ImageChops.difference(image, shifted)).mean[0])


@dataclass(frozen=True, slots=True)
class Measure:
    """How a released region compares with the original."""

    changed: float  # mean absolute pixel difference
    detail_kept: float  # detail of the released region / detail of the original

    @property
    def blurred(self) -> bool:
        """Visibly changed and most of the detail gone."""
        return self.changed > 8 and self.detail_kept < 0.5

    @property
    def as_original(self) -> bool:
        """Practically the original pixels."""
        return self.changed < 3 and self.detail_kept > 0.9


def measure(original: bytes, released: bytes, region: Region) -> Measure:
    """Compare one region of a released image with the original."""
    size = Image.open(io.BytesIO(original)).size
    before, after = _crop(original, region, size), _crop(released, region, size)
    changed = float(ImageStat.Stat(ImageChops.difference(before, after)).mean[0])
    return Measure(changed=changed, detail_kept=detail(after) / max(detail(before), 1e-6))
