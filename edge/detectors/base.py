"""What every detector shares: the `Found` result, the interface, sessions, NMS, resizing."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]  # no stubs, no py.typed
from numpy.typing import NDArray

Image = NDArray[np.uint8]  # H x W x 3, RGB
Floats = NDArray[np.float32]
Session = ort.InferenceSession
AttributeValue = str | int | float | bool


@dataclass(frozen=True, slots=True)
class Found:
    """One object in one frame, in pixel coordinates of that frame (x1, y1, x2, y2)."""

    label: str
    confidence: float
    box: tuple[float, float, float, float]
    attributes: dict[str, AttributeValue] = field(default_factory=dict)


class Detector(Protocol):
    """A model that finds objects in an RGB frame."""

    @property
    def name(self) -> str:
        """The model name put in events."""
        ...

    @property
    def version(self) -> str:
        """The model version put in events."""
        ...

    def detect(self, image: Image) -> list[Found]:
        """Objects in `image`, best first."""
        ...


class NamedModel:
    """The model name and version a detector stamps on its events (one implementation for
    every detector; subclasses set both in their constructor)."""

    _name: str
    _version: str

    @property
    def name(self) -> str:
        """Model name for events."""
        return self._name

    @property
    def version(self) -> str:
        """Model version for events."""
        return self._version


def custom_metadata(session: ort.InferenceSession) -> dict[str, str]:
    """The model's custom metadata (key/value pairs stored in the ONNX file)."""
    return dict(session.get_modelmeta().custom_metadata_map)


def cpu_providers() -> list[str]:
    """The execution providers we use: every available one except remote (Azure) ones."""
    return [p for p in ort.get_available_providers() if p != "AzureExecutionProvider"]


def open_session(model: Path, *, threads: int = 0) -> ort.InferenceSession:
    """An onnxruntime session on the local providers; `threads` 0 lets onnxruntime choose."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # shipped models carry harmless initializer warnings
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model), sess_options=options, providers=cpu_providers())


def nms(boxes: Floats, scores: Floats, iou: float) -> list[int]:
    """Indices kept by greedy non-maximum suppression, best score first."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        width = np.maximum(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0)
        height = np.maximum(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0)
        inter = width * height
        overlap = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-9)
        order = rest[overlap <= iou]
    return keep


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    width = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    height = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def round_up(value: int, multiple: int) -> int:
    """`value` rounded up to a multiple of `multiple`."""
    return -(-value // multiple) * multiple


def resize(image: Image, width: int, height: int) -> Image:
    """`image` resized to exactly width x height (area filter when shrinking)."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrinking = width < image.shape[1] and height < image.shape[0]
    method = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(image, (width, height), interpolation=method), dtype=np.uint8)


def letterbox(image: Image, width: int, height: int) -> tuple[Image, float, int, int]:
    """Resize keeping the aspect ratio, padded with grey; (canvas, scale, pad_x, pad_y)."""
    scale = min(width / image.shape[1], height / image.shape[0])
    new_w, new_h = round(image.shape[1] * scale), round(image.shape[0] * scale)
    pad_x, pad_y = (width - new_w) // 2, (height - new_h) // 2
    canvas = np.full((height, width, 3), 114, dtype=np.uint8)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resize(image, new_w, new_h)
    return canvas, scale, pad_x, pad_y


def to_chw(image: Image, *, scale: float = 1.0, shift: float = 0.0) -> Floats:
    """A 1 x 3 x H x W float32 blob: pixel * scale + shift."""
    blob = image.astype(np.float32).transpose(2, 0, 1)[np.newaxis]
    if scale != 1.0 or shift != 0.0:
        blob = blob * np.float32(scale) + np.float32(shift)
    return np.ascontiguousarray(blob, dtype=np.float32)


def clip_box(box: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    """`box` clipped to the frame."""
    return (
        float(min(max(box[0], 0.0), width)),
        float(min(max(box[1], 0.0), height)),
        float(min(max(box[2], 0.0), width)),
        float(min(max(box[3], 0.0), height)),
    )
