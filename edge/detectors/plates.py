"""Text and plate regions read with RapidOCR's PP-OCRv4 models, reported as class `plate`.

Detection is a DB (differentiable binarisation) probability map: regions above a threshold
become boxes grown by the DB "unclip" distance. Recognition is CTC: the best class per time
step, repeats collapsed, blanks dropped; the alphabet is stored in the model's metadata.
"""

from pathlib import Path

import cv2
import numpy as np

from edge.detectors.base import (
    Floats,
    Found,
    Image,
    NamedModel,
    Session,
    clip_box,
    custom_metadata,
    open_session,
    resize,
    round_up,
    to_chw,
)

NORM = {"scale": 2 / 255, "shift": -1.0}  # (x / 255 - 0.5) / 0.5
BINARY_THRESHOLD = 0.3
UNCLIP_RATIO = 1.6
REC_HEIGHT = 48
REC_MAX_WIDTH = 320
MAX_REGIONS = 16
MIN_SIDE = 4  # pixels on the probability map


class PlateReader(NamedModel):
    """Text regions and their reading; `threshold` applies to the reading's mean confidence."""

    def __init__(
        self,
        detector_model: Path,
        recognizer_model: Path,
        *,
        input_size: tuple[int, int] = (640, 480),
        threshold: float = 0.5,
        box_threshold: float = 0.5,
        threads: int = 0,
        name: str = "rapidocr",
        version: str = "ppocrv4-1.4.4",
    ) -> None:
        """Open both sessions and load the recogniser's alphabet."""
        self._det = open_session(detector_model, threads=threads)
        self._rec = open_session(recognizer_model, threads=threads)
        self._alphabet = read_alphabet(self._rec)
        self._size = (round_up(input_size[0], 32), round_up(input_size[1], 32))
        self._threshold = threshold
        self._box_threshold = box_threshold
        self._name, self._version = name, version

    def detect(self, image: Image) -> list[Found]:
        """Readable text regions in an RGB frame (the models were trained on BGR)."""
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        width, height = self._size
        blob = to_chw(resize(bgr, width, height), **NORM)
        (probability,) = self._det.run(None, {self._det.get_inputs()[0].name: blob})
        scale = (image.shape[1] / width, image.shape[0] / height)
        regions = text_regions(probability[0, 0], box_threshold=self._box_threshold)
        found = []
        for box, region_score in regions[:MAX_REGIONS]:
            frame_box = clip_box(
                (box[0] * scale[0], box[1] * scale[1], box[2] * scale[0], box[3] * scale[1]),
                image.shape[1],
                image.shape[0],
            )
            text, text_score = self._read(bgr, frame_box)
            if text and text_score >= self._threshold:
                attributes: dict[str, str | int | float | bool] = {
                    "plate_text": text[:256],
                    "text_confidence": round(text_score, 4),
                }
                found.append(Found("plate", region_score, frame_box, attributes))
        return found

    def _read(self, bgr: Image, box: tuple[float, float, float, float]) -> tuple[str, float]:
        x1, y1, x2, y2 = (round(v) for v in box)
        crop = bgr[y1:y2, x1:x2]
        if crop.shape[0] < 2 or crop.shape[1] < 2:
            return "", 0.0
        width = min(REC_MAX_WIDTH, max(8, int(np.ceil(REC_HEIGHT * crop.shape[1] / crop.shape[0]))))
        canvas = np.zeros((1, 3, REC_HEIGHT, REC_MAX_WIDTH), dtype=np.float32)
        canvas[:, :, :, :width] = to_chw(resize(crop, width, REC_HEIGHT), **NORM)
        (probabilities,) = self._rec.run(None, {self._rec.get_inputs()[0].name: canvas})
        return decode_ctc(np.asarray(probabilities[0], dtype=np.float32), self._alphabet)


def read_alphabet(session: Session) -> list[str]:
    """The recogniser's classes: blank, the characters in its metadata, then a space."""
    characters = custom_metadata(session).get("character")
    if not characters:
        raise ValueError("the recognition model carries no 'character' metadata")
    return ["", *characters.splitlines(), " "]


def decode_ctc(probabilities: Floats, alphabet: list[str]) -> tuple[str, float]:
    """Greedy CTC: best class per step, repeats collapsed, blanks (class 0) dropped."""
    best = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    keep = best != 0
    keep[1:] &= best[1:] != best[:-1]
    if not keep.any():
        return "", 0.0
    text = "".join(alphabet[index] for index in best[keep])
    return text.strip(), float(confidence[keep].mean())


def text_regions(
    probability: Floats, *, box_threshold: float
) -> list[tuple[tuple[float, float, float, float], float]]:
    """Axis-aligned boxes (map pixels) of text regions with their mean probability."""
    mask = (probability > BINARY_THRESHOLD).astype(np.uint8)
    mask = np.asarray(cv2.dilate(mask, np.ones((2, 2), dtype=np.uint8)), dtype=np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    regions = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        if min(w, h) < MIN_SIDE:
            continue
        score = float(probability[y : y + h, x : x + w][mask[y : y + h, x : x + w] > 0].mean())
        if score < box_threshold:
            continue
        grow = w * h * UNCLIP_RATIO / (2 * (w + h))  # DB's unclip distance for a rectangle
        box = (x - grow, y - grow, x + w + grow, y + h + grow)
        regions.append((box, score))
    regions.sort(key=lambda region: -region[1])
    return regions
