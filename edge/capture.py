"""Frames from a video file, an RTSP stream (both through PyAV) or a folder of images.

Frames are sampled at `sample_fps` by their presentation time (files) or by the wall clock
(streams); each carries its capture time in UTC, from the configured clock. A stream that
drops is reported and reopened with backoff (`read_frames`).
"""

import logging
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import numpy as np
from PIL import Image as PILImage

from edge.backoff import backoff_delay
from edge.detectors.base import Image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
OPEN_TIMEOUT = 10.0  # seconds to open a source (PyAV interrupt callback)
READ_TIMEOUT = 10.0  # seconds without data before a read fails (a silently dead stream)
SOCKET_TIMEOUT_US = "5000000"  # FFmpeg's RTSP socket I/O timeout (microseconds)
RECONNECT_BASE = 0.5  # first reconnect delay (s); doubles, with jitter ...
RECONNECT_CAP = 10.0  # ... up to this


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


def read_frames(spec: SourceSpec, *, stop: threading.Event | None = None) -> Iterator[Frame]:
    """Sampled frames from the source, until it ends.

    A stream never ends by itself: when it cannot be opened or drops (error, end of stream,
    no data for `READ_TIMEOUT` s) that is logged once and it is reopened with backoff until
    it is back or `stop` is set. Without `stop`, only closing the iterator ends it.
    """
    if spec.is_folder:
        return _folder_frames(spec)
    if spec.is_stream:
        return _stream_frames(spec, stop or threading.Event())
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


def _open(spec: SourceSpec) -> "av.container.InputContainer":
    options = {"rtsp_transport": "tcp", "timeout": SOCKET_TIMEOUT_US} if spec.is_stream else {}
    try:
        return av.open(spec.source, options=options, timeout=(OPEN_TIMEOUT, READ_TIMEOUT))
    except (av.FFmpegError, OSError) as exc:
        raise CaptureError(f"cannot open {spec.source}: {exc}") from exc


@dataclass(slots=True)
class _Sampler:
    """Frame numbering and the sampling grid of one source, kept across reconnects."""

    spec: SourceSpec
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    began: float = field(default_factory=time.monotonic)
    next_due: float = 0.0
    index: int = 0

    def decode(self, container: "av.container.InputContainer") -> Iterator[Frame]:
        step = 1.0 / self.spec.sample_fps
        # Stream frames are timed by arrival, which jitters: one up to a quarter period early
        # is on time, so the sampled rate stays even (not one source frame early, then late).
        slack = step / 4 if self.spec.is_stream else 1e-6
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for decoded in container.decode(stream):
                if self.spec.is_stream or decoded.time is None:
                    offset = time.monotonic() - self.began
                else:
                    offset = float(decoded.time)
                if offset + slack < self.next_due:
                    continue
                self.next_due += step
                if self.next_due <= offset:  # a gap in the media: restart the grid here
                    self.next_due = offset + step
                image = np.asarray(decoded.to_ndarray(format="rgb24"), dtype=np.uint8)
                yield Frame(image, _stamp(self.spec, self.started, offset), offset, self.index)
                self.index += 1
        except av.FFmpegError as exc:
            raise CaptureError(f"reading {self.spec.source} failed: {exc}") from exc


def _video_frames(spec: SourceSpec) -> Iterator[Frame]:
    with _open(spec) as container:
        yield from _Sampler(spec).decode(container)


def _stream_frames(spec: SourceSpec, stop: threading.Event) -> Iterator[Frame]:
    """A network stream, reopened whenever it drops, until `stop` is set."""
    sampler = _Sampler(spec)
    rng = random.SystemRandom()  # jitter only
    attempt = 0
    lost_at: float | None = None
    while not stop.is_set():
        reason = "the stream ended"
        try:
            with _open(spec) as container:
                if lost_at is not None:
                    log.info(
                        "stream %s is back after %.1f s", spec.source, time.monotonic() - lost_at
                    )
                    lost_at = None
                for frame in sampler.decode(container):
                    attempt = 0
                    yield frame
                    if stop.is_set():
                        return
        except CaptureError as exc:
            reason = str(exc)
        if stop.is_set():
            return
        delay = backoff_delay(attempt, rng, base=RECONNECT_BASE, cap=RECONNECT_CAP)
        if lost_at is None:
            lost_at = time.monotonic()
            log.warning("stream %s lost (%s); reconnecting", spec.source, reason)
        else:
            log.info("stream %s still down (%s); retry in %.1f s", spec.source, reason, delay)
        attempt += 1
        stop.wait(delay)


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
