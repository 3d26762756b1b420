"""YOLOv8-style detectors: one output `[1, 4 + classes, anchors]` of (cx, cy, w, h, scores)."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge.detectors.base import (
    Floats,
    Found,
    Image,
    NamedModel,
    clip_box,
    letterbox,
    nms,
    open_session,
    to_chw,
)

CLASS_OFFSET = 4096.0  # shifts boxes per class so one NMS pass never mixes classes


class YoloDetector(NamedModel):
    """A user-supplied YOLOv8-style model (letterboxed RGB input scaled to 0..1)."""

    def __init__(
        self,
        model: Path,
        *,
        labels: Sequence[str],
        input_size: tuple[int, int] = (640, 640),
        threshold: float = 0.25,
        nms_iou: float = 0.45,
        threads: int = 0,
        name: str = "yolo",
        version: str = "1",
    ) -> None:
        """Open the session; `input_size` is (width, height) unless the model fixes it."""
        self._session = open_session(model, threads=threads)
        meta = self._session.get_inputs()[0]
        self._input = meta.name
        fixed = meta.shape[2:]
        if all(isinstance(dim, int) for dim in fixed):
            input_size = (int(fixed[1]), int(fixed[0]))
        self._size = input_size
        self._labels = list(labels)
        self._threshold = threshold
        self._nms_iou = nms_iou
        self._name, self._version = name, version

    def detect(self, image: Image) -> list[Found]:
        """Objects in an RGB frame."""
        canvas, scale, pad_x, pad_y = letterbox(image, *self._size)
        (output,) = self._session.run(None, {self._input: to_chw(canvas, scale=1 / 255)})
        return decode_yolo(
            np.asarray(output, dtype=np.float32),
            labels=self._labels,
            threshold=self._threshold,
            nms_iou=self._nms_iou,
            letterboxed=(scale, pad_x, pad_y),
            frame=(image.shape[1], image.shape[0]),
        )


def decode_yolo(
    output: Floats,
    *,
    labels: Sequence[str],
    threshold: float,
    nms_iou: float,
    letterboxed: tuple[float, int, int] = (1.0, 0, 0),
    frame: tuple[int, int],
) -> list[Found]:
    """Boxes above `threshold`, per-class NMS, mapped back from the letterboxed input."""
    rows = output[0].T  # anchors x (4 + classes)
    scores_all = rows[:, 4:]
    classes = scores_all.argmax(axis=1)
    scores = scores_all[np.arange(len(rows)), classes]
    chosen = scores > threshold
    if not chosen.any():
        return []
    rows, classes, scores = rows[chosen], classes[chosen], scores[chosen].astype(np.float32)
    cx, cy, w, h = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    shifted = (boxes + classes[:, None] * CLASS_OFFSET).astype(np.float32)
    scale, pad_x, pad_y = letterboxed
    pads = np.array([pad_x, pad_y, pad_x, pad_y], dtype=np.float32)
    found = []
    for index in nms(shifted, scores, nms_iou):
        number = int(classes[index])
        label = labels[number] if number < len(labels) else f"class_{number}"
        box = (boxes[index] - pads) / scale
        found.append(
            Found(label=label, confidence=float(scores[index]), box=clip_box(box.tolist(), *frame))
        )
    return found
