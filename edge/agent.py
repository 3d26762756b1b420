"""The edge agent: capture -> detect -> track -> spool, while the uploader drains the spool.

Capture and detection are CPU-bound and run in a worker thread; the uploader runs on the event
loop. The spool sits between them, so a slow or absent hub never stalls detection and a crash
never loses what was detected.
"""

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

from edge.capture import Frame, SourceSpec, expected_frames, read_frames
from edge.config import EdgeConfig, PrivacySection, resolve
from edge.detectors import Detector, build_detector
from edge.detectors.base import Found, Image
from edge.events import build_event, snapshots_for
from edge.privacy import Redactor
from edge.signing import RequestSigner, load_private_key
from edge.spool import Snapshot, Spool, SpoolFullError
from edge.tracker import IouTracker
from edge.uploader import Uploader, UploadOptions, UploadTotals
from hub.contracts.detection_v1 import DetectionEvent

log = logging.getLogger("edge.agent")

Progress = Callable[[int, int | None], None]


@dataclass(slots=True)
class Stage:
    """One detector and the tracker of its objects."""

    detector: Detector
    tracker: IouTracker


@dataclass(slots=True)
class Pipeline:
    """Turns frames into events worth sending, with their snapshots."""

    camera_id: str
    stages: list[Stage]
    snapshots: bool = True
    crops: bool = False
    quality: int = 80
    max_side: int = 1280
    privacy: Redactor = field(default_factory=lambda: Redactor(PrivacySection()))

    def process(self, frame: Frame) -> list[tuple[DetectionEvent, list[Snapshot]]]:
        """Detect, track and build one event per detector that saw something new or changed.

        Privacy masks are blacked out before detection; every detection of a class redacted
        at the source, from any detector, is blacked out of the frame all snapshots and crops
        are cut from."""
        image = self.privacy.mask(frame.image)
        size = (image.shape[1], image.shape[0])
        seen = [(stage, stage.detector.detect(image)) for stage in self.stages]
        if self.snapshots:
            image = self.privacy.redact(image, (f for _, found in seen for f in found))
        out = []
        for stage, found in seen:
            sightings = stage.tracker.update(found)
            if not sightings:
                continue
            event = build_event(
                sightings,
                camera_id=self.camera_id,
                captured_at=frame.captured_at,
                model_name=stage.detector.name,
                model_version=stage.detector.version,
                frame_size=size,
                redacted=self.privacy.classes,
            )
            out.append((event, self._shots(image, [s.found for s in sightings])))
        return out

    def _shots(self, image: Image, found: list[Found]) -> list[Snapshot]:
        if not self.snapshots:
            return []
        return snapshots_for(
            image,
            found,
            crops=self.crops,
            quality=self.quality,
            max_side=self.max_side,
            redacted=self.privacy.classes,
        )


@dataclass(slots=True)
class AgentReport:
    """What one run did."""

    frames: int = 0
    events: int = 0
    refused: int = 0
    upload: UploadTotals = field(default_factory=UploadTotals)
    drained: bool = False


def build_pipeline(config: EdgeConfig, detectors: Sequence[Detector] | None = None) -> Pipeline:
    """The pipeline the configuration describes (or around the given detectors)."""
    if detectors is None:
        detectors = [build_detector(section, config) for section in config.detectors]
    t = config.tracker
    stages = [
        Stage(
            detector,
            IouTracker(
                match_iou=t.match_iou,
                max_missed=t.max_missed,
                moved_iou=t.moved_iou,
                confidence_gain=t.confidence_gain,
            ),
        )
        for detector in detectors
    ]
    s = config.snapshots
    return Pipeline(
        config.camera.id,
        stages,
        snapshots=s.enabled,
        crops=s.crops,
        quality=s.quality,
        max_side=s.max_side,
        privacy=Redactor(config.privacy),
    )


def open_spool(config: EdgeConfig) -> Spool:
    """The spool the configuration names."""
    return Spool(
        resolve(config, config.spool.path),
        max_bytes=config.spool.max_bytes,
        eviction=config.spool.eviction,
    )


def source_spec(config: EdgeConfig) -> SourceSpec:
    """The capture source, with relative paths resolved against the config file."""
    camera = config.camera
    source = camera.source
    if "://" not in source:
        source = str(resolve(config, source))
    start_at = datetime.fromisoformat(camera.start_at) if camera.start_at else None
    if start_at is not None and start_at.tzinfo is None:
        raise ValueError("camera.start_at needs a UTC offset")
    return SourceSpec(source, camera.sample_fps, camera.clock, start_at)


def load_signer(config: EdgeConfig) -> RequestSigner:
    """The node's signer from its key file."""
    key = load_private_key(resolve(config, config.hub.key_file).read_bytes())
    return RequestSigner(key_id=config.hub.node_id, private_key=key)


def capture_into_spool(
    pipeline: Pipeline,
    spec: SourceSpec,
    spool: Spool,
    *,
    stop: threading.Event,
    report: AgentReport,
    progress: Progress | None = None,
    loop_source: bool = False,
) -> None:
    """Read, detect and spool until the source ends (or forever with `loop_source`)."""
    total = expected_frames(spec)
    while not stop.is_set():
        for frame in read_frames(spec, stop=stop):
            for event, shots in pipeline.process(frame):
                try:
                    spool.put(event, shots)
                    report.events += 1
                except SpoolFullError as exc:
                    report.refused += 1
                    log.warning("event dropped: %s", exc)
            report.frames += 1
            if progress is not None:
                progress(report.frames, total)
            if stop.is_set():
                return
        if not loop_source or spec.is_stream:
            return


async def run_agent(
    config: EdgeConfig,
    *,
    stop: asyncio.Event,
    pipeline: Pipeline | None = None,
    progress: Progress | None = None,
    client: httpx.AsyncClient | None = None,
) -> AgentReport:
    """Run capture and upload; for finite input, wait (bounded) for the spool to drain."""
    report = AgentReport()
    pipeline = pipeline or build_pipeline(config)
    spool = open_spool(config)
    halt = threading.Event()
    owned = client is None
    client = client or httpx.AsyncClient(timeout=config.upload.timeout, trust_env=False)
    u = config.upload
    options = UploadOptions(
        hub_url=config.hub.url.rstrip("/"),
        batch_size=u.batch_size,
        idle_interval=u.idle_interval,
        backoff_base=u.backoff_base,
        backoff_cap=u.backoff_cap,
    )
    uploader = Uploader(spool, client, load_signer(config), options, totals=report.upload)
    upload_stop = asyncio.Event()
    upload_task = asyncio.create_task(uploader.run(upload_stop))
    capture = asyncio.create_task(
        asyncio.to_thread(
            capture_into_spool,
            pipeline,
            source_spec(config),
            spool,
            stop=halt,
            report=report,
            progress=progress,
            loop_source=config.camera.loop,
        )
    )
    try:
        await _until_captured(capture, stop, halt)
        report.drained = await _drain(spool, stop, within=u.drain_timeout)
    finally:
        halt.set()
        upload_stop.set()
        await asyncio.gather(upload_task, capture, return_exceptions=True)
        if owned:
            await client.aclose()
        spool.close()
    return report


async def _until_captured(
    capture: "asyncio.Task[None]", stop: asyncio.Event, halt: threading.Event
) -> None:
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({capture, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    halt.set()
    await capture  # re-raises a capture error


async def _drain(spool: Spool, stop: asyncio.Event, *, within: float) -> bool:
    """Wait until nothing is pending (True), `stop` is set or `within` s pass (False)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not stop.is_set() and loop.time() < deadline:
        if (await asyncio.to_thread(spool.status)).pending == 0:
            return True
        await asyncio.sleep(0.2)
    return (await asyncio.to_thread(spool.status)).pending == 0


def spool_path(config: EdgeConfig) -> Path:
    """Where the spool lives."""
    return resolve(config, config.spool.path)
