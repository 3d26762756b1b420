"""Redaction at the source, checked in the pixels: privacy masks and redacted classes are
burned into what the edge stores and uploads, and nothing else in the picture changes."""

import hashlib
import io
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image as PILImage

from edge.agent import Pipeline, Stage, build_pipeline
from edge.capture import Frame
from edge.config import (
    ConfigError,
    EdgeConfig,
    HubSection,
    PrivacyMask,
    PrivacySection,
    load_config,
)
from edge.detectors import CenterFaceDetector, PlateReader
from edge.detectors.base import Found, Image
from edge.models import RAPIDOCR_DET, RAPIDOCR_DIST, RAPIDOCR_REC, packaged_file
from edge.privacy import Redactor, polygon_raster
from edge.spool import Snapshot, Spool
from edge.tracker import IouTracker
from hub.contracts.detection_v1 import BoundingBox, Detection, DetectionEvent
from tests.edge.conftest import plate_frame

Pixels = NDArray[np.uint8]


def textured(height: int = 120, width: int = 160) -> Pixels:
    """A frame where every pixel differs from its neighbours (so any change shows)."""
    rng = np.random.default_rng(7)
    return rng.integers(40, 250, size=(height, width, 3), dtype=np.uint8)


def smooth(height: int = 120, width: int = 160) -> Pixels:
    """Gentle gradients (60..220) that JPEG keeps nearly exactly, unlike noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    red = 140 + 80 * np.sin(x / 37.0)
    green = 140 + 80 * np.cos(y / 29.0)
    blue = 60 + 160 * (x + y) / (width + height)
    return np.stack([red, green, blue], axis=-1).astype(np.uint8)


def decode(jpeg: bytes) -> Pixels:
    with PILImage.open(io.BytesIO(jpeg)) as picture:
        return np.asarray(picture.convert("RGB"), dtype=np.uint8)


def mean_diff(a: Pixels, b: Pixels) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


class Fixed:
    """A detector that reports the same objects in every frame and keeps what it was shown."""

    def __init__(self, name: str, found: list[Found]) -> None:
        self.name = name
        self.version = "1"
        self.found = found
        self.shown: list[Image] = []

    def detect(self, image: Image) -> list[Found]:
        self.shown.append(image)
        return list(self.found)


def pipeline(privacy: PrivacySection, *stages: Fixed, crops: bool = False) -> Pipeline:
    return Pipeline(
        "cam-1",
        [Stage(detector, IouTracker()) for detector in stages],
        crops=crops,
        quality=95,
        privacy=Redactor(privacy),
    )


def frame(image: Pixels) -> Frame:
    return Frame(image=image, captured_at=datetime.now(UTC), offset=0.0, index=0)


# --- the pure parts ----------------------------------------------------------------------


def test_a_mask_blacks_out_its_polygon_and_nothing_else() -> None:
    image = textured()
    square = PrivacyMask(
        name="window", polygon=[(0.25, 0.25), (0.5, 0.25), (0.5, 0.5), (0.25, 0.5)]
    )
    masked = Redactor(PrivacySection(masks=[square])).mask(image)
    inside = polygon_raster([square.polygon], (160, 120))
    assert inside.sum() > 0.05 * inside.size
    assert (masked[inside] == 0).all()
    assert np.array_equal(masked[~inside], image[~inside])
    assert image.min() >= 40  # the caller's frame is untouched


def test_a_triangle_mask_covers_a_triangle() -> None:
    raster = polygon_raster([[(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]], (101, 101))
    assert raster[0, 0]
    assert raster[10, 10]
    assert not raster[90, 90]
    assert abs(raster.mean() - 0.5) < 0.02


def test_only_boxes_of_redacted_classes_are_blacked_out() -> None:
    image = textured()
    face = Found(label="face", confidence=0.9, box=(10.2, 20.7, 40.0, 60.0))
    person = Found(label="person", confidence=0.9, box=(80.0, 10.0, 150.0, 110.0))
    out = Redactor(PrivacySection(redact_at_source=["face"])).redact(image, [face, person])
    covered = np.zeros(image.shape[:2], dtype=bool)
    covered[20:60, 10:40] = True  # partial pixels at the edges count as covered
    assert (out[covered] == 0).all()
    assert np.array_equal(out[~covered], image[~covered])


# --- through the pipeline: what reaches the detector and the snapshots ----------------------


def test_masked_pixels_never_reach_a_detector() -> None:
    detector = Fixed("people", [])
    left_half = PrivacyMask(polygon=[(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)])
    pipeline(PrivacySection(masks=[left_half]), detector).process(frame(textured()))
    (shown,) = detector.shown
    assert (shown[:, :78] == 0).all()
    assert shown[:, 82:].min() >= 40


def test_every_snapshot_of_a_frame_hides_every_redacted_detection() -> None:
    image = smooth(240, 320)
    marks = {"left_eye_x": 0.2, "left_eye_y": 0.3}
    face = Found(label="face", confidence=0.9, box=(40.0, 40.0, 120.0, 140.0), attributes=marks)
    faces = Fixed("faces", [face])
    plates = Fixed(
        "plates",
        [
            Found(
                label="plate",
                confidence=0.9,
                box=(200.0, 180.0, 300.0, 220.0),
                attributes={"plate_text": "AB-123-CD"},
            )
        ],
    )
    results = pipeline(PrivacySection(redact_at_source=["face"]), faces, plates, crops=True)
    out = results.process(frame(image))
    assert [e.model_name for e, _ in out] == ["faces", "plates"]
    (_, face_shots), (_, plate_shots) = out
    face_frame, face_crop = face_shots
    plate_frame_shot, plate_crop = plate_shots
    # One frame, one image: the plate event's snapshot hides the face too.
    assert face_frame.sha256 == plate_frame_shot.sha256
    picture = decode(plate_frame_shot.data)
    assert picture[45:135, 45:115].mean() < 8  # the face region is black
    outside = np.ones(image.shape[:2], dtype=bool)
    outside[32:148, 32:128] = False  # JPEG blocks around the box may bleed
    assert mean_diff(picture[outside], image[outside]) < 6  # the rest is the picture
    assert decode(face_crop.data).mean() < 8  # the face crop is black whole
    assert mean_diff(decode(plate_crop.data), image[180:220, 200:300]) < 8  # plate untouched
    assert {s.redacted_classes for s in face_shots + plate_shots} == {("face",)}
    (face_event, _), (plate_event, _) = out
    assert face_event.detections[0].attributes == {}
    assert plate_event.detections[0].attributes == {"plate_text": "AB-123-CD"}


def test_without_privacy_settings_snapshots_are_the_frame() -> None:
    image = smooth()
    faces = Fixed("faces", [Found(label="face", confidence=0.9, box=(10.0, 10.0, 50.0, 50.0))])
    ((_, (shot,)),) = pipeline(PrivacySection(), faces).process(frame(image))
    assert mean_diff(decode(shot.data), image) < 6
    assert shot.redacted_classes == ()


def test_real_detectors_face_and_plate_burned_in(centerface_model: Path, astronaut: Pixels) -> None:
    """CenterFace and the plate reader on one frame: the astronaut's face and a plate."""
    image = plate_frame("KL-456-MN", x=380, y=380).copy()
    image[:320, :320] = np.asarray(PILImage.fromarray(astronaut).resize((320, 320)))
    reader = PlateReader(
        packaged_file(RAPIDOCR_DIST, RAPIDOCR_DET), packaged_file(RAPIDOCR_DIST, RAPIDOCR_REC)
    )
    stages = [
        Stage(CenterFaceDetector(centerface_model), IouTracker()),
        Stage(reader, IouTracker()),
    ]
    privacy = Redactor(PrivacySection(redact_at_source=["face", "plate"]))
    out = Pipeline("cam-1", stages, quality=95, privacy=privacy).process(frame(image))
    boxes = {d.label: d.box for event, _ in out for d in event.detections}
    assert set(boxes) == {"face", "plate"}
    # Burned out of the pixels, and not sent as text either: no landmarks, no plate text.
    assert all(d.attributes == {} for event, _ in out for d in event.detections)
    picture = decode(out[0][1][0].data)
    for label in ("face", "plate"):
        x1, y1, x2, y2 = pixel_box(boxes[label], width=640, height=480)
        region = picture[y1 + 4 : y2 - 4, x1 + 4 : x2 - 4]
        assert region.mean() < 8, label
        assert mean_diff(region, image[y1 + 4 : y2 - 4, x1 + 4 : x2 - 4]) > 60, label
    # The sky and the background far from both boxes are as they were.
    assert mean_diff(picture[:20, 400:], image[:20, 400:]) < 4
    assert mean_diff(picture[250:300, :300], image[250:300, :300]) < 6


def pixel_box(box: BoundingBox, *, width: int, height: int) -> tuple[int, int, int, int]:
    return (
        int(box.x * width),
        int(box.y * height),
        int((box.x + box.width) * width),
        int((box.y + box.height) * height),
    )


# --- the upload says what was redacted ---------------------------------------------------


def event() -> DetectionEvent:
    box = BoundingBox(x=0.1, y=0.1, width=0.2, height=0.3)
    return DetectionEvent(
        event_id=uuid.uuid4(),
        camera_id="cam-1",
        captured_at=datetime.now(UTC),
        model_name="test",
        model_version="1",
        detections=[Detection(label="face", confidence=0.9, box=box)],
    )


def shot(tag: bytes, redacted: tuple[str, ...] = ()) -> Snapshot:
    return Snapshot(sha256=hashlib.sha256(tag).hexdigest(), data=tag, redacted_classes=redacted)


def test_spooled_media_carry_their_redacted_classes(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite", max_bytes=10**7)
    spool.put(event(), [shot(b"burned", ("face", "plate")), shot(b"plain")])
    ((_, sent),) = [(p.seq, p.event) for p in spool.next_batch(10)]
    burned, plain = sent.media
    assert burned.redacted_classes == ["face", "plate"]
    assert plain.classes_redacted() == frozenset()
    body = msgspec.json.decode(msgspec.json.encode(sent))
    assert body["media"][0]["redacted_classes"] == ["face", "plate"]
    assert "redacted_classes" not in body["media"][1]  # absent, not empty: v1 unchanged
    spool.close()


def test_a_spool_from_an_older_agent_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE media (sha256 TEXT PRIMARY KEY, body BLOB NOT NULL, content_type TEXT"
        " NOT NULL, created REAL NOT NULL, uploaded INTEGER NOT NULL DEFAULT 0, size INTEGER"
        " NOT NULL)"
    )
    db.execute("INSERT INTO media VALUES ('ab', x'00', 'image/jpeg', 0, 0, 1)")
    db.commit()
    db.close()
    spool = Spool(path, max_bytes=10**7)
    spool.put(event(), [shot(b"new", ("face",))])
    (pending,) = spool.next_batch(10)
    assert pending.event.media[0].redacted_classes == ["face"]
    spool.close()


# --- configuration -----------------------------------------------------------------------


def write_config(tmp_path: Path, privacy: str) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(
        '[hub]\nurl = "http://127.0.0.1:9"\nnode_id = "n"\nkey_file = "k"\n\n'
        '[[detectors]]\nkind = "centerface"\n\n' + privacy
    )
    return path


def test_privacy_section_is_read_from_edge_toml(tmp_path: Path) -> None:
    config = load_config(
        write_config(
            tmp_path,
            '[privacy]\nredact_at_source = ["face"]\n\n'
            '[[privacy.masks]]\nname = "neighbour"\npolygon = [[0, 0], [0.2, 0], [0.2, 0.3]]\n',
        )
    )
    assert config.privacy.redact_at_source == ["face"]
    assert config.privacy.masks[0].polygon == [(0.0, 0.0), (0.2, 0.0), (0.2, 0.3)]
    built = build_pipeline(config, detectors=[])
    assert built.privacy.classes == frozenset({"face"})


@pytest.mark.parametrize(
    ("privacy", "message"),
    [
        ('[privacy]\nredact_at_source = ["plate"]\n', "no configured detector"),
        ("[[privacy.masks]]\npolygon = [[0, 0], [1, 1]]\n", "length >= 3"),
        ("[[privacy.masks]]\npolygon = [[0, 0], [1.5, 0], [0, 1]]\n", "<= 1.0"),
    ],
)
def test_bad_privacy_settings_are_refused(tmp_path: Path, privacy: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write_config(tmp_path, privacy))


def test_default_config_redacts_nothing() -> None:
    config = EdgeConfig(hub=HubSection(url="u", node_id="n", key_file="k"))
    assert not Redactor(config.privacy).active
