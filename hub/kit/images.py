"""Image headers read without decoding: how many pixels an upload would cost before anyone
decodes it.

A 142 KB PNG can declare 7000 x 7000 pixels: decoding and blurring it took 5 s of CPU and
900 MB. Pillow reads only the header on `open`, so the pixel count is known for the price of
a few hundred bytes and a too-large image is refused at upload, before it is ever decoded.
"""

import io
import warnings
from typing import NamedTuple

from PIL import Image, UnidentifiedImageError

from hub.kit.errors import PayloadTooLargeError

# Pillow's plugin name for each media type the hub stores.
FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG"}


class ImageTooLargeError(PayloadTooLargeError):
    """The image declares more pixels (or a longer side) than the hub decodes."""

    code = "image_too_large"
    title = "Image too large"


class ImageHeader(NamedTuple):
    """What the header declares."""

    width: int
    height: int

    @property
    def pixels(self) -> int:
        """Width times height."""
        return self.width * self.height


def read_header(data: bytes, *, content_type: str) -> ImageHeader | None:
    """The declared size of a JPEG or PNG; None when the header cannot be read as that type."""
    plugin = FORMATS.get(content_type)
    if plugin is None:
        return None
    with warnings.catch_warnings():
        # The size check is ours; Pillow's own bomb warning would only repeat it.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=[plugin]) as image:
                width, height = image.size
        except Image.DecompressionBombError:
            return ImageHeader(width=1 << 31, height=1 << 31)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            return None
    return ImageHeader(width=width, height=height)


def check_pixels(
    data: bytes, *, content_type: str, max_pixels: int, max_side: int
) -> ImageHeader | None:
    """Refuse (413) an image whose header declares more than `max_pixels` or a side longer
    than `max_side`; returns the header, or None when it cannot be read (left to the
    decoders, which refuse what they cannot read)."""
    header = read_header(data, content_type=content_type)
    if header is not None and (header.pixels > max_pixels or max(header) > max_side):
        raise ImageTooLargeError(
            f"the image declares {header.width} x {header.height} pixels; at most "
            f"{max_pixels} pixels and {max_side} per side are accepted"
        )
    return header
