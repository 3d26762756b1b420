"""Decoders on real frames and on a model whose output we know."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from numpy.typing import NDArray

from edge.detectors import CenterFaceDetector, PlateReader, YoloDetector, nms
from edge.detectors.plates import decode_ctc
from edge.detectors.yolo import decode_yolo
from edge.models import (
    CENTERFACE_DIST,
    CENTERFACE_FILE,
    RAPIDOCR_DET,
    RAPIDOCR_DIST,
    RAPIDOCR_REC,
    packaged_file,
    prepare_centerface,
)
from tests.edge.conftest import plate_frame, yolo_model

# --- CenterFace -------------------------------------------------------------------------


def test_centerface_as_shipped_is_fixed_and_lists_weights_as_inputs() -> None:
    shipped = onnx.load(str(packaged_file(CENTERFACE_DIST, CENTERFACE_FILE)))
    first = shipped.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in first] == [10, 3, 32, 32]
    assert len(shipped.graph.input) > 100


def test_rewrite_makes_one_dynamic_input_and_is_cached(centerface_model: Path) -> None:
    model = onnx.load(str(centerface_model))
    assert [i.name for i in model.graph.input] == ["input.1"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "height", "width"]
    for output in model.graph.output:
        assert output.type.tensor_type.shape.dim[0].dim_param == "batch"
    before = centerface_model.stat().st_mtime_ns
    assert prepare_centerface(centerface_model.parent) == centerface_model
    assert centerface_model.stat().st_mtime_ns == before  # reused, not rewritten


def test_centerface_finds_the_astronauts_face(
    centerface_model: Path, astronaut: NDArray[np.uint8]
) -> None:
    detector = CenterFaceDetector(centerface_model, input_size=(512, 512))
    (face,) = detector.detect(astronaut)
    assert face.label == "face"
    assert face.confidence > 0.8
    x1, y1, x2, y2 = face.box
    # The face sits around x 180-270, y 55-180 in this photo.
    assert 150 < x1 < 210
    assert 240 < x2 < 300
    assert 30 < y1 < 90
    assert 150 < y2 < 210
    eye_x, eye_y = face.attributes["left_eye_x"], face.attributes["left_eye_y"]
    assert isinstance(eye_x, float)
    assert isinstance(eye_y, float)
    assert x1 < eye_x * 512 < x2
    assert y1 < eye_y * 512 < y2


def test_centerface_at_640x480_and_on_an_empty_frame(
    centerface_model: Path, astronaut: NDArray[np.uint8]
) -> None:
    detector = CenterFaceDetector(centerface_model, input_size=(640, 480))
    frame = np.zeros((480, 640, 3), dtype=np.uint8)
    assert detector.detect(frame) == []
    frame[:, 64:576] = np.asarray(astronaut[16:496])  # photo pasted into a wider frame
    (face,) = detector.detect(frame)
    assert 64 + 150 < face.box[0] < 64 + 210


# --- RapidOCR plates -------------------------------------------------------------------


@pytest.fixture(scope="module")
def plate_reader() -> PlateReader:
    return PlateReader(
        packaged_file(RAPIDOCR_DIST, RAPIDOCR_DET), packaged_file(RAPIDOCR_DIST, RAPIDOCR_REC)
    )


def test_plate_is_found_and_read(plate_reader: PlateReader) -> None:
    (plate,) = plate_reader.detect(plate_frame("AB-123-CD", x=200, y=300))
    assert plate.label == "plate"
    assert plate.attributes["plate_text"] == "AB-123-CD"
    assert 180 < plate.box[0] < 230
    assert 290 < plate.box[1] < 330
    assert plate.box[2] < 460
    assert plate.box[3] < 380


def test_frame_without_text_has_no_plate(plate_reader: PlateReader) -> None:
    assert plate_reader.detect(np.full((480, 640, 3), 120, dtype=np.uint8)) == []


def test_ctc_collapses_repeats_and_drops_blanks() -> None:
    alphabet = ["", "A", "B", " "]
    steps = [1, 1, 0, 1, 2, 2, 0, 0, 3]
    probabilities = np.full((len(steps), 4), 0.01, dtype=np.float32)
    probabilities[np.arange(len(steps)), steps] = 0.9
    text, score = decode_ctc(probabilities, alphabet)
    assert text == "AAB"  # the trailing space is stripped
    assert score == pytest.approx(0.9)


# --- YOLOv8-style ----------------------------------------------------------------------


def yolo_output(
    rows: list[tuple[float, float, float, float, int, float]], classes: int
) -> NDArray[np.float32]:
    """[1, 4 + classes, anchors] with one anchor per (cx, cy, w, h, class, score) row."""
    output = np.zeros((1, 4 + classes, len(rows)), dtype=np.float32)
    for anchor, (cx, cy, w, h, number, score) in enumerate(rows):
        output[0, :4, anchor] = (cx, cy, w, h)
        output[0, 4 + number, anchor] = score
    return output


KNOWN = [
    (320.0, 320.0, 100.0, 200.0, 0, 0.9),  # person
    (325.0, 322.0, 100.0, 200.0, 0, 0.6),  # the same person again: suppressed
    (322.0, 320.0, 110.0, 190.0, 1, 0.7),  # a vehicle on top of it: another class, kept
    (100.0, 200.0, 40.0, 40.0, 1, 0.1),  # below the threshold
]


def test_yolo_model_built_with_onnx_helper_decodes_known_boxes(tmp_path: Path) -> None:
    model = yolo_model(tmp_path / "fixed.onnx", yolo_output(KNOWN, classes=2))
    detector = YoloDetector(model, labels=["person", "vehicle"], threshold=0.25)
    found = detector.detect(np.zeros((480, 640, 3), dtype=np.uint8))
    assert [(f.label, round(f.confidence, 2)) for f in found] == [("person", 0.9), ("vehicle", 0.7)]
    # 640x480 letterboxed into 640x640: scale 1, 80 px of padding above.
    assert found[0].box == pytest.approx((270.0, 140.0, 370.0, 340.0))


def test_yolo_decoder_maps_back_through_the_letterbox() -> None:
    output = yolo_output([(320.0, 320.0, 64.0, 64.0, 2, 0.8)], classes=3)
    (found,) = decode_yolo(
        output,
        labels=["a", "b"],
        threshold=0.5,
        nms_iou=0.45,
        letterboxed=(0.5, 0, 80),
        frame=(1280, 960),
    )
    assert found.label == "class_2"
    assert found.box == pytest.approx((576.0, 416.0, 704.0, 544.0))


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], dtype=np.float32)
    scores = np.array([0.5, 0.9, 0.7], dtype=np.float32)
    assert nms(boxes, scores, 0.5) == [1, 2]
