"""Image headers: the declared size is read without decoding, and too many pixels refused."""

import io
import time

import pytest
from PIL import Image

from hub.kit.images import ImageHeader, ImageTooLargeError, check_pixels, read_header


def encoded(width: int, height: int, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("L", (width, height)).save(out, format=fmt)
    return out.getvalue()


def test_the_header_gives_the_size_in_microseconds() -> None:
    data = encoded(7000, 7000)  # about 48 KB of PNG for 49 M pixels
    started = time.perf_counter()
    header = read_header(data, content_type="image/png")
    assert time.perf_counter() - started < 0.01
    assert header == ImageHeader(width=7000, height=7000)


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"png" * 10, "image/png"),
        (encoded(10, 10, "JPEG"), "image/png"),  # the type must match the bytes
        (encoded(10, 10), "image/gif"),
    ],
)
def test_an_unreadable_header_is_none(data: bytes, content_type: str) -> None:
    assert read_header(data, content_type=content_type) is None


def test_too_many_pixels_or_too_long_a_side_is_413() -> None:
    limits = {"max_pixels": 1_000_000, "max_side": 2_000}
    assert check_pixels(encoded(1000, 1000), content_type="image/png", **limits) is not None
    for width, height in ((1001, 1000), (2001, 10)):
        with pytest.raises(ImageTooLargeError) as refused:
            check_pixels(encoded(width, height), content_type="image/png", **limits)
        assert (refused.value.status, refused.value.code) == (413, "image_too_large")
