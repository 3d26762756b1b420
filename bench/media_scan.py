"""Hub media scan benchmark: CPU time per image and recall on the demo frames.

    .venv/bin/python bench/media_scan.py [--rounds 5] [--threads 1]

Draws the frames `hub up` shows (scikit-image's astronaut face above a rendered plate, both
demo cameras, 4 frames each), encodes them as the edge sends them (JPEG, quality 80), as PNG
and halved, and scans each with the hub's scanner (`hub.media.scan`, the worker's settings: one
onnxruntime thread). A face counts as found when a face box overlaps the true face with
IoU >= 0.3; a plate when a plate box's centre lies inside the plate. Prints CPU and wall
time per image (median and p95 over rounds) and recall per class.
"""

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hub.cli.demo_edge import CAMERAS, FRAME_SIZE, FRAMES, draw_frames
from hub.contracts.detection_v1 import BoundingBox
from hub.media.scan import Box, MediaScanner

# Where draw_frames puts things (pixels of a 640 x 480 frame): the photo is pasted at
# (30 + 110 * step, 40), 200 px square, the face inside it at this offset and size; the
# plate rectangle at (340 - 30 * step, 370), 240 x 60.
FACE_IN_PHOTO = (60, 42, 83, 105)
PLATE_SIZE = (240, 60)


def truth(step: int) -> tuple[BoundingBox, BoundingBox]:
    """The true face and plate boxes of a frame (normalised)."""
    width, height = FRAME_SIZE
    fx = 30 + 110 * step + FACE_IN_PHOTO[0]
    face = BoundingBox(
        x=fx / width,
        y=(40 + FACE_IN_PHOTO[1]) / height,
        width=FACE_IN_PHOTO[2] / width,
        height=FACE_IN_PHOTO[3] / height,
    )
    px = 340 - 30 * step
    plate = BoundingBox(
        x=px / width, y=370 / height, width=PLATE_SIZE[0] / width, height=PLATE_SIZE[1] / height
    )
    return face, plate


def iou(a: BoundingBox, b: BoundingBox) -> float:
    """Intersection over union of two normalised boxes."""
    w = max(0.0, min(a.x + a.width, b.x + b.width) - max(a.x, b.x))
    h = max(0.0, min(a.y + a.height, b.y + b.height) - max(a.y, b.y))
    inter = w * h
    return inter / (a.width * a.height + b.width * b.height - inter)


def centre_inside(a: BoundingBox, b: BoundingBox) -> bool:
    """Whether the centre of `a` lies inside `b`."""
    cx, cy = a.x + a.width / 2, a.y + a.height / 2
    return b.x <= cx <= b.x + b.width and b.y <= cy <= b.y + b.height


def frames() -> list[tuple[str, int, dict[str, bytes]]]:
    """(name, step, {encoding: bytes}) for every demo frame of both cameras: PNG, JPEG at
    quality 80 (what the edge sends) and JPEG of the frame halved to 320x240 (a smaller
    face: 42 px wide)."""
    out = []
    root = Path(tempfile.mkdtemp(prefix="bench-media-"))
    for camera, plate in CAMERAS:
        mirrored = camera != CAMERAS[0][0]
        draw_frames(root / camera, plate=plate, mirrored=mirrored)
        for number, path in enumerate(sorted((root / camera).glob("*.png"))):
            step = FRAMES - 1 - number if mirrored else number
            with Image.open(path) as image:
                rgb = image.convert("RGB")
                encoded = {
                    "png": path.read_bytes(),
                    "jpeg q80": _jpeg(rgb),
                    "jpeg q80 320x240": _jpeg(rgb.resize((320, 240))),
                }
            out.append((f"{camera}/{path.name}", step, encoded))
    return out


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def judge(found: list[Box], step: int) -> tuple[bool, bool, int]:
    """(face found, plate found, other boxes) for one scan."""
    face, plate = truth(step)
    faces = [b for b in found if b.label == "face" and iou(b.box, face) >= 0.3]
    plates = [b for b in found if b.label == "plate" and centre_inside(b.box, plate)]
    return bool(faces), bool(plates), len(found) - len(faces) - len(plates)


def main() -> None:
    """Scan every frame `rounds` times per encoding and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()
    scanner = MediaScanner.from_installed(threads=args.threads)
    print(f"models loaded in {(time.perf_counter() - started) * 1000:.0f} ms")
    samples = frames()
    scanner.scan(samples[0][2]["png"])  # warm-up: the first run allocates
    for encoding in samples[0][2]:
        report(scanner, samples, encoding, rounds=args.rounds, threads=args.threads)


def report(
    scanner: MediaScanner,
    samples: list[tuple[str, int, dict[str, bytes]]],
    encoding: str,
    *,
    rounds: int,
    threads: int,
) -> None:
    """Scan one encoding of every frame `rounds` times; print time and recall."""
    cpu, wall = [], []
    faces = plates = extra = 0
    for _ in range(rounds):
        for _name, step, encoded in samples:
            t0, c0 = time.perf_counter(), time.process_time()
            found = scanner.scan(encoded[encoding])
            cpu.append((time.process_time() - c0) * 1000)
            wall.append((time.perf_counter() - t0) * 1000)
            face_ok, plate_ok, others = judge(found, step)
            faces += face_ok
            plates += plate_ok
            extra += others
    scans = len(cpu)
    print(f"{encoding}: {len(samples)} frames x {rounds} rounds, threads={threads}")
    print(f"  CPU per image   median {statistics.median(cpu):6.1f} ms   p95 {_p95(cpu):6.1f} ms")
    print(f"  wall per image  median {statistics.median(wall):6.1f} ms   p95 {_p95(wall):6.1f} ms")
    print(
        f"  recall          faces {faces}/{scans} ({faces / scans:.0%})   "
        f"plates {plates}/{scans} ({plates / scans:.0%})   other boxes {extra}"
    )


def _p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.95) - 1)]


if __name__ == "__main__":
    main()
