"""Blurring regions of real images with Pillow."""

import io

import pytest
from PIL import Image, ImageDraw

from hub.contracts.detection_v1 import BoundingBox
from hub.policy.media import MediaError, blur_regions


def striped(fmt: str) -> bytes:
    image = Image.new("RGB", (200, 100), "white")
    draw = ImageDraw.Draw(image)
    for x in range(0, 200, 4):
        draw.line([(x, 0), (x, 100)], fill="black", width=2)
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def contrast(image: Image.Image, area: tuple[int, int, int, int]) -> int:
    low, high = image.crop(area).convert("L").getextrema()
    return int(high) - int(low)


@pytest.mark.parametrize(("fmt", "content_type"), [("PNG", "image/png"), ("JPEG", "image/jpeg")])
def test_only_the_box_is_blurred(fmt: str, content_type: str) -> None:
    box = BoundingBox(x=0.25, y=0.25, width=0.25, height=0.5)
    out = Image.open(io.BytesIO(blur_regions(striped(fmt), [box], content_type=content_type)))
    assert out.format == fmt
    assert contrast(out, (60, 35, 90, 65)) < 60  # inside: stripes smeared away
    assert contrast(out, (150, 10, 190, 90)) > 150  # outside: untouched stripes


def test_garbage_is_refused() -> None:
    with pytest.raises(MediaError):
        blur_regions(b"\xff\xd8\xffnot really", [], content_type="image/jpeg")


@pytest.mark.parametrize("mode", ["P", "1", "I;16", "LA", "RGBA"])
def test_every_png_mode_is_blurred(mode: str) -> None:
    source = Image.open(io.BytesIO(striped("PNG")))
    converted = source.convert("I").convert(mode) if mode == "I;16" else source.convert(mode)
    out = io.BytesIO()
    converted.save(out, format="PNG")
    box = BoundingBox(x=0.25, y=0.25, width=0.25, height=0.5)
    blurred = Image.open(io.BytesIO(blur_regions(out.getvalue(), [box], content_type="image/png")))
    assert contrast(blurred, (60, 35, 90, 65)) < contrast(converted, (60, 35, 90, 65)) / 2
