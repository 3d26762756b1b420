"""The edge node's configuration: one TOML file (`hub-edge run --config edge.toml`).

Relative paths in the file are relative to the file's own folder. Every section but `hub`
has defaults; see edge/README.md for an annotated example.
"""

from pathlib import Path
from typing import Annotated, Literal

import msgspec

Positive = Annotated[float, msgspec.Meta(gt=0)]
Fraction = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Eviction = Literal["oldest", "media-first", "refuse-new"]


class HubSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where to upload and as whom."""

    url: str
    node_id: str
    key_file: str


class CameraSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One input: a video file, an RTSP URL or a folder of images."""

    id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:\-]{1,128}$")] = "camera-1"
    source: str = ""
    sample_fps: Positive = 5.0
    # "wall": capture time is when the frame is read; "media": start_at + the frame's offset.
    clock: Literal["wall", "media"] = "wall"
    start_at: str | None = None  # RFC 3339 with offset; default: when the run starts
    loop: bool = False


class DetectorSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One ONNX detector and the decoder for its outputs."""

    kind: Literal["centerface", "yolo", "plate"]
    model: str | None = None  # required for yolo; the pinned model (edge.models) otherwise
    input_width: int = 640
    input_height: int = 480
    threshold: Fraction = 0.5
    nms_iou: Fraction = 0.45
    labels: list[str] = []  # yolo class names, in output order
    name: str | None = None  # model_name in events; defaults per kind
    version: str = "1"


class TrackerSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """When a detection continues a track and when a track's change is worth an event."""

    match_iou: Fraction = 0.3
    max_missed: Annotated[int, msgspec.Meta(ge=0)] = 5
    moved_iou: Fraction = 0.5
    confidence_gain: Fraction = 0.15


class SpoolSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The local queue: where, how big, and what to give up when full."""

    path: str = "spool.sqlite"
    max_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 256 * 1024 * 1024
    eviction: Eviction = "oldest"


class UploadSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Batching and retry of uploads."""

    batch_size: Annotated[int, msgspec.Meta(ge=1, le=500)] = 100
    idle_interval: Positive = 1.0
    timeout: Positive = 10.0
    backoff_base: Positive = 0.5
    backoff_cap: Positive = 60.0
    drain_timeout: Positive = 30.0  # file input: how long to wait for the spool to empty


class SnapshotSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """JPEG evidence attached to events."""

    enabled: bool = True
    crops: bool = False
    quality: Annotated[int, msgspec.Meta(ge=10, le=95)] = 80
    max_side: Annotated[int, msgspec.Meta(ge=64)] = 1280


Label = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9_.\-]+$")]
Point = tuple[Fraction, Fraction]


class PrivacyMask(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An area never to be seen: a polygon of (x, y) points, 0..1 from the top-left."""

    name: str = ""
    polygon: Annotated[list[Point], msgspec.Meta(min_length=3, max_length=64)]


class PrivacySection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What this camera redacts on the box, before anything is spooled or uploaded: masked
    areas never reach a detector; detections of `redact_at_source` classes are blacked out
    in every snapshot and crop, and the upload says so (`MediaRef.redacted_classes`)."""

    redact_at_source: list[Label] = []
    masks: list[PrivacyMask] = []


class EdgeConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole file."""

    hub: HubSection
    camera: CameraSection = CameraSection()
    detectors: list[DetectorSection] = []
    tracker: TrackerSection = TrackerSection()
    spool: SpoolSection = SpoolSection()
    upload: UploadSection = UploadSection()
    snapshots: SnapshotSection = SnapshotSection()
    privacy: PrivacySection = PrivacySection()
    model_cache: str | None = None  # rewritten models (CenterFace); default ~/.cache/hub-edge
    models_dir: str | None = None  # fetched model files; default ~/.local/share/hub-edge/models
    threads: Annotated[int, msgspec.Meta(ge=0)] = 0  # onnxruntime intra-op threads; 0 = auto
    base_dir: str = "."  # filled in by load_config: the config file's folder


class ConfigError(ValueError):
    """The configuration file is missing or invalid."""


def load_config(path: Path) -> EdgeConfig:
    """Read and validate `path`; relative paths inside resolve against its folder."""
    try:
        config = msgspec.toml.decode(path.read_bytes(), type=EdgeConfig)
    except (OSError, msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    blind = undetectable_redactions(config)
    if blind:
        # Claiming "faces redacted" with no face detector would be a promise nobody keeps.
        raise ConfigError(
            f"{path}: privacy.redact_at_source names {', '.join(blind)}, which no configured "
            "detector finds"
        )
    return msgspec.structs.replace(config, base_dir=str(path.resolve().parent))


DETECTOR_LABELS = {"centerface": ("face",), "plate": ("plate",)}


def undetectable_redactions(config: EdgeConfig) -> list[str]:
    """Classes to redact at the source that none of the configured detectors reports."""
    found: set[str] = set()
    for section in config.detectors:
        labels = section.labels if section.kind == "yolo" else DETECTOR_LABELS[section.kind]
        found |= {label.lower() for label in labels}
    return [c for c in config.privacy.redact_at_source if c not in found]


def resolve(config: EdgeConfig, value: str) -> Path:
    """A path from the config, made absolute against the config file's folder."""
    candidate = Path(value).expanduser()
    return candidate if candidate.is_absolute() else Path(config.base_dir) / candidate
