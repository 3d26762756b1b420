"""Media obligations: blur the regions of given classes in a released image (Pillow).

Boxes come from the event's detections in normalised coordinates. A region is blurred
strongly enough that a face or a plate cannot be read back, and a little beyond its box,
because detectors draw boxes tight.
"""

import io
from collections.abc import Iterable

from PIL import Image, ImageFilter

from hub.contracts.detection_v1 import BoundingBox

# Refuse decompression bombs: a snapshot is a camera frame, never more than ~50 megapixels.
MAX_PIXELS = 50_000_000
MARGIN = 0.1  # grow each box by 10 % on every side
BLURRABLE_MODES = {"RGB", "RGBA", "L", "LA", "CMYK"}


class MediaError(ValueError):
    """The image cannot be decoded or is too large to process safely."""


def blur_regions(data: bytes, boxes: Iterable[BoundingBox], *, content_type: str) -> bytes:
    """The image with every box blurred beyond recognition, re-encoded in its own format
    without the file's metadata (EXIF, text chunks): pixels only."""
    image = _blurrable(_open(data))
    width, height = image.size
    for box in boxes:
        area = _pixels(box, width, height)
        if area[2] > area[0] and area[3] > area[1]:
            region = image.crop(area)
            radius = max(8, (area[2] - area[0]) // 4)
            image.paste(region.filter(ImageFilter.GaussianBlur(radius)), area[:2])
    out = io.BytesIO()
    if content_type == "image/png":
        image.save(out, format="PNG")
    else:
        image.convert("RGB").save(out, format="JPEG", quality=85)
    return out.getvalue()


def _open(data: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > MAX_PIXELS:
            raise MediaError("image is too large to process")
        image.load()
    except (OSError, Image.DecompressionBombError) as exc:
        raise MediaError(f"cannot decode image: {type(exc).__name__}") from None
    return image


def _blurrable(image: Image.Image) -> Image.Image:
    """The image in a mode Pillow's filters take (palette, bilevel and 16-bit PNGs are not)."""
    if image.mode in BLURRABLE_MODES:
        return image
    try:
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    except (OSError, ValueError) as exc:
        raise MediaError(f"cannot process image mode {image.mode}") from exc


def _pixels(box: BoundingBox, width: int, height: int) -> tuple[int, int, int, int]:
    dx, dy = box.width * MARGIN, box.height * MARGIN
    left = max(0.0, box.x - dx) * width
    top = max(0.0, box.y - dy) * height
    right = min(1.0, box.x + box.width + dx) * width
    bottom = min(1.0, box.y + box.height + dy) * height
    return int(left), int(top), round(right), round(bottom)
