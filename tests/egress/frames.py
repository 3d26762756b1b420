"""The matrix's frame: one snapshot with a face and a licence plate, and pixel measures that
say whether a region reached a recipient blurred or as it was."""

import hashlib
import io
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageDraw, ImageStat

WIDTH, HEIGHT = 320, 240
PLATE_TEXT = "KL-456-MN"


@dataclass(frozen=True, slots=True)
class Region:
    """A box in normalised coordinates (as events carry it) and in pixels."""

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


FACE = Region(x=0.1, y=0.2, width=0.25, height=0.35)
PLATE = Region(x=0.55, y=0.6, width=0.35, height=0.15)


def frame() -> tuple[bytes, str]:
    """A PNG: smooth background, a checkered "face" and a plate with its text; its SHA-256."""
    image = Image.linear_gradient("L").resize((WIDTH, HEIGHT)).convert("RGB")
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = FACE.pixels(image.size)
    for y in range(top, bottom, 2):
        for x in range(left, right, 2):
            if (x // 2 + y // 2) % 2:
                draw.rectangle([x, y, x + 1, y + 1], fill=(240, 200, 170))
            else:
                draw.rectangle([x, y, x + 1, y + 1], fill=(40, 20, 10))
    left, top, right, bottom = PLATE.pixels(image.size)
    draw.rectangle([left, top, right - 1, bottom - 1], fill="white", outline="black")
    draw.text((left + 6, top + 10), PLATE_TEXT, fill="black")
    for x in range(left + 2, right - 2, 3):
        draw.line([(x, top + 2), (x, top + 6)], fill="black")
    out = io.BytesIO()
    image.save(out, format="PNG")
    data = out.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def _crop(data: bytes, region: Region) -> Image.Image:
    image = Image.open(io.BytesIO(data)).convert("L")
    assert image.size == (WIDTH, HEIGHT), f"released image has size {image.size}"
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
    before, after = _crop(original, region), _crop(released, region)
    changed = float(ImageStat.Stat(ImageChops.difference(before, after)).mean[0])
    return Measure(changed=changed, detail_kept=detail(after) / max(detail(before), 1e-6))
