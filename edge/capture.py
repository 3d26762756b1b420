"""Frames from a video file, an RTSP stream (both through PyAV) or a folder of images.

Frames are sampled at `sample_fps` by their presentation time (files) or by the wall clock
(streams); each carries its capture time in UTC, from the configured clock.
"""

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import numpy as np
from PIL import Image as PILImage

from edge.detectors.base import Image

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


@dataclass(frozen=True, slots=True)
class Frame:
    """One sampled frame: RGB pixels, when it was captured, and where it came from."""

    image: Image
    captured_at: datetime
    offset: float  # seconds since the start of the source
    index: int  # sampled frame number, from 0


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """What to read and how to stamp it."""

    source: str
    sample_fps: float = 5.0
    clock: str = "wall"  # "wall" or "media"
    start_at: datetime | None = None

    @property
    def is_stream(self) -> bool:
        """True for network streams (no end, no progress total)."""
        return self.source.lower().startswith(STREAM_SCHEMES)

    @property
    def is_folder(self) -> bool:
        """True for a folder of images."""
        return not self.is_stream and Path(self.source).is_dir()


class CaptureError(RuntimeError):
    """The source cannot be opened or read."""


def read_frames(spec: SourceSpec) -> Iterator[Frame]:
    """Sampled frames from the source, until it ends (streams end only on error)."""
    if spec.is_folder:
        return _folder_frames(spec)
    return _video_frames(spec)


def expected_frames(spec: SourceSpec) -> int | None:
    """How many frames `read_frames` will yield (estimated for video); None for streams."""
    if spec.is_stream:
        return None
    if spec.is_folder:
        return len(_image_files(Path(spec.source)))
    try:
        with av.open(spec.source) as container:
            stream = container.streams.video[0]
            if stream.duration is not None and stream.time_base is not None:
                seconds = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                seconds = container.duration / av.time_base
            else:
                return None
    except (av.FFmpegError, IndexError, OSError):
        return None
    return max(1, int(seconds * spec.sample_fps) + 1)


def _stamp(spec: SourceSpec, started: datetime, offset: float) -> datetime:
    if spec.clock == "media":
        return (spec.start_at or started) + timedelta(seconds=offset)
    return datetime.now(UTC)


def _video_frames(spec: SourceSpec) -> Iterator[Frame]:
    options = {"rtsp_transport": "tcp", "stimeout": "5000000"} if spec.is_stream else {}
    try:
        container = av.open(spec.source, options=options, timeout=10.0)
    except (av.FFmpegError, OSError) as exc:
        raise CaptureError(f"cannot open {spec.source}: {exc}") from exc
    started = datetime.now(UTC)
    began = time.monotonic()
    step = 1.0 / spec.sample_fps
    next_due = 0.0
    index = 0
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for decoded in container.decode(stream):
                if spec.is_stream or decoded.time is None:
                    offset = time.monotonic() - began
                else:
                    offset = float(decoded.time)
                if offset + 1e-6 < next_due:
                    continue
                next_due += step
                if next_due <= offset:  # a gap in the media: restart the grid here
                    next_due = offset + step
                image = np.asarray(decoded.to_ndarray(format="rgb24"), dtype=np.uint8)
                yield Frame(image, _stamp(spec, started, offset), offset, index)
                index += 1
        except av.FFmpegError as exc:
            raise CaptureError(f"reading {spec.source} failed: {exc}") from exc


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _folder_frames(spec: SourceSpec) -> Iterator[Frame]:
    """Images in name order, one per 1/sample_fps of media time."""
    started = datetime.now(UTC)
    for index, path in enumerate(_image_files(Path(spec.source))):
        try:
            with PILImage.open(path) as opened:
                image = np.asarray(opened.convert("RGB"), dtype=np.uint8)
        except OSError as exc:
            raise CaptureError(f"cannot read {path}: {exc}") from exc
        offset = index / spec.sample_fps
        yield Frame(image, _stamp(spec, started, offset), offset, index)
