"""Edge benchmark: frames/s and per-frame latency of each decoder at 640x480, spool throughput.

    .venv/bin/python bench/edge.py [--frames 60] [--threads 2]

Figures depend on the CPU and on what else runs on it; the goal is >= 15 frames/s for
CenterFace at 640x480 on 2 cores.
"""

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.detectors import CenterFaceDetector, PlateReader, YoloDetector, cpu_providers
from edge.models import (
    RAPIDOCR_DET,
    RAPIDOCR_DIST,
    RAPIDOCR_REC,
    default_cache_dir,
    packaged_file,
    prepare_centerface,
)
from edge.spool import Snapshot, Spool
from hub.contracts.detection_v1 import BoundingBox, Detection, DetectionEvent


def test_frame() -> np.ndarray:
    """640x480: the astronaut photo (one face) beside a plate."""
    canvas = Image.new("RGB", (640, 480), (90, 110, 90))
    with Image.open(packaged_file("scikit-image", "astronaut.png")) as photo:
        canvas.paste(photo.convert("RGB").resize((300, 300)), (320, 0))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((60, 380, 300, 440), fill="white", outline="black")
    draw.text((75, 385), "AB-123-CD", fill="black", font=ImageFont.load_default(size=44))
    return np.asarray(canvas, dtype=np.uint8)


def yolo_like_model(folder: Path) -> Path:
    """A YOLOv8n-sized head is not bundled; time the decoder on a small conv net instead."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array(rng.normal(0, 0.1, (84, 3, 8, 8)).astype(np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["images", "w"], ["c"], strides=[8, 8]),  # 84 x 80 x 80
        helper.make_node("Sigmoid", ["c"], ["s"]),
        helper.make_node("Reshape", ["s", "shape"], ["output0"]),
    ]
    shape = numpy_helper.from_array(np.array([1, 84, -1], dtype=np.int64), "shape")
    graph = helper.make_graph(
        nodes,
        "yolo-like",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 640, 640])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 84, 6400])],
        initializer=[weights, shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = folder / "yolo-like.onnx"
    onnx.save(model, str(path))
    return path


def time_detector(
    name: str, detect: Callable[[np.ndarray], object], frame: np.ndarray, n: int
) -> None:
    for _ in range(3):
        detect(frame)  # warm-up
    latencies = []
    for _ in range(n):
        start = time.perf_counter()
        detect(frame)
        latencies.append((time.perf_counter() - start) * 1000)
    total = sum(latencies) / 1000
    p95 = sorted(latencies)[int(0.95 * (len(latencies) - 1))]
    print(
        f"{name:<22} {n / total:7.1f} frames/s   latency median"
        f" {statistics.median(latencies):6.1f} ms   p95 {p95:6.1f} ms"
    )


def bench_spool(folder: Path, count: int) -> None:
    spool = Spool(folder / "bench.sqlite", max_bytes=10**9)
    data = os.urandom(30_000)  # a typical 640x480 JPEG snapshot
    start = time.perf_counter()
    for number in range(count):
        event = DetectionEvent(
            event_id=uuid.uuid4(),
            camera_id="bench",
            captured_at=datetime.now(UTC),
            model_name="bench",
            model_version="1",
            detections=[
                Detection(
                    label="face",
                    confidence=0.9,
                    box=BoundingBox(x=0.1, y=0.1, width=0.2, height=0.2),
                )
            ],
        )
        blob = data + number.to_bytes(4, "big")
        spool.put(event, [Snapshot(sha256=hashlib.sha256(blob).hexdigest(), data=blob)])
    written = time.perf_counter() - start
    start = time.perf_counter()
    drained = 0
    while batch := spool.next_batch(100):
        for media in spool.media_to_upload([p.seq for p in batch]):
            spool.mark_media_uploaded(media.sha256)
        spool.settle(done=[p.seq for p in batch])
        drained += len(batch)
    drain = time.perf_counter() - start
    print(
        f"spool write (fsync each) {count / written:7.1f} events/s   ({count} events + 30 kB JPEG)"
    )
    print(f"spool drain (batch 100)  {drained / drain:7.1f} events/s")
    spool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = auto)")
    parser.add_argument("--spool-events", type=int, default=1000)
    args = parser.parse_args()
    print(f"onnxruntime {ort.__version__}; available providers {ort.get_available_providers()}")
    print(
        f"used providers {cpu_providers()}; cpus {os.cpu_count()}; threads {args.threads or 'auto'}"
    )
    frame = test_frame()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        face = CenterFaceDetector(prepare_centerface(default_cache_dir()), threads=args.threads)
        print(f"centerface found {len(face.detect(frame))} face(s) in the test frame")
        time_detector("centerface 640x480", face.detect, frame, args.frames)
        plates = PlateReader(
            packaged_file(RAPIDOCR_DIST, RAPIDOCR_DET),
            packaged_file(RAPIDOCR_DIST, RAPIDOCR_REC),
            threads=args.threads,
        )
        read = [f.attributes.get("plate_text") for f in plates.detect(frame)]
        print(f"rapidocr read {read}")
        time_detector("rapidocr plate 640x480", plates.detect, frame, max(args.frames // 2, 5))
        yolo = YoloDetector(yolo_like_model(folder), labels=[], threshold=0.6, threads=args.threads)
        time_detector("yolo decoder (toy net)", yolo.detect, frame, args.frames)
        bench_spool(folder, args.spool_events)


if __name__ == "__main__":
    main()
