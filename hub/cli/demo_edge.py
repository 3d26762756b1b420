"""The demo edge node of `hub up` as the real edge agent: `hub-edge run` over drawn frames.

On first use it draws a few frames per camera into `.hub/demo-edge/frames/<camera>/` (the
face of scikit-image's astronaut photo crossing the scene above a rendered number plate) and
writes one `edge.toml` per camera, all sharing the demo node's key and one spool. `hub up`
runs `hub-edge run` over each camera in turn and pauses between rounds, so the demo keeps
producing events at a modest rate (the agent reads files as fast as it can). Nothing here
is committed: `.hub/` is ignored by git.
"""

import importlib.metadata
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import msgspec

from hub.cli.demo_node import DemoNode

# (camera id, plate text): demo-cam-1 is in jurisdiction north, demo-cam-2 in central.
CAMERAS = (("demo-cam-1", "AB-123-CD"), ("demo-cam-2", "KL-456-MN"))
FRAMES = 4  # per camera and pass: the face moves every frame, so each frame is an event
FRAME_SIZE = (640, 480)
ROUND_PAUSE = 10.0  # seconds between rounds (one pass over every camera)
FACE = ("scikit-image", "astronaut.png")
DETECTORS = ("centerface", "plate")  # the detector kinds edge_toml configures


class EdgeDemo(msgspec.Struct, frozen=True, kw_only=True):
    """The real-agent demo: the `hub-edge` program and one config file per camera."""

    program: str
    configs: list[tuple[str, str]]  # (camera id, edge.toml path)
    frames_dir: str


def agent_unavailable() -> str | None:
    """Why the real edge agent cannot run here (None when it can): program, libraries, models."""
    if find_program() is None:
        return "the hub-edge program is not installed (make install installs it)"
    for module in ("av", "onnx", "onnxruntime", "PIL"):
        if importlib.util.find_spec(module) is None:
            return f"the Python package {module!r} is missing (make install adds the edge extra)"
    if _packaged_file(*FACE) is None:
        return f"{FACE[1]} from {FACE[0]} is missing (make install installs it)"
    missing = _missing_models()
    if missing:
        # The agent would fetch them itself, but `hub up` must start offline and quickly.
        return f"the edge models {', '.join(missing)} are missing (hub-edge models fetch)"
    return None


def _missing_models() -> list[str]:
    """The pinned models the demo's detectors need that the agent would not find (fetched into
    its models folder or installed as wheels): the same look-up `hub-edge run` makes."""
    from edge.models.pins import KIND_MODELS
    from edge.models.store import missing_models

    names = [name for kind in DETECTORS for name in KIND_MODELS[kind]]
    return missing_models(names)


def find_program() -> str | None:
    """`hub-edge` beside this interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).with_name("hub-edge")
    return str(beside) if beside.is_file() else shutil.which("hub-edge")


def prepare_edge_demo(state_dir: Path, *, hub_url: str, node: DemoNode) -> EdgeDemo:
    """Draw the frames (first run only) and write each camera's edge.toml for this hub."""
    program = find_program()
    if program is None:
        raise FileNotFoundError("hub-edge is not installed")
    folder = (state_dir / "demo-edge").resolve()
    configs = []
    for camera, plate in CAMERAS:
        frames = folder / "frames" / camera
        if not any(frames.glob("*.png")):
            draw_frames(frames, plate=plate, mirrored=camera != CAMERAS[0][0])
        config = folder / f"{camera}.toml"
        config.write_text(
            edge_toml(hub_url=hub_url, node=node, camera=camera, frames=frames), encoding="utf-8"
        )
        configs.append((camera, str(config)))
    return EdgeDemo(program=program, configs=configs, frames_dir=str(folder / "frames"))


def edge_commands(demo: EdgeDemo) -> list[tuple[str, list[str]]]:
    """One `hub-edge run` per camera, named for the log (`edge-cam-1`, ...)."""
    return [
        (f"edge-{camera.removeprefix('demo-')}", [demo.program, "run", "--config", config])
        for camera, config in demo.configs
    ]


def status_command(demo: EdgeDemo) -> str:
    """The command that shows the demo node's spool (shared by its cameras)."""
    return f"hub-edge status --config {shown_path(demo.configs[0][1])}"


def edge_toml(*, hub_url: str, node: DemoNode, camera: str, frames: Path) -> str:
    """One camera's configuration: face and plate detectors, the shared spool, snapshots on."""

    def q(value: str) -> str:
        return json.dumps(value)  # a JSON string is a valid TOML basic string

    return "\n".join(
        [
            "# Written by `hub up` at every start; edit hub/cli/demo_edge.py instead.",
            "[hub]",
            f"url = {q(hub_url)}",
            f"node_id = {q(str(node.node_id))}",
            f"key_file = {q(str(Path(node.key_path).resolve()))}",
            "",
            "[camera]",
            f"id = {q(camera)}",
            f"source = {q(str(frames))}",
            'clock = "wall"',
            "",
            "[[detectors]]",
            'kind = "centerface"',
            "threshold = 0.6",
            "",
            "[[detectors]]",
            'kind = "plate"',
            "",
            "[spool]",
            'path = "spool.sqlite"',
            "",
            "[upload]",
            "drain_timeout = 20",
            "",
        ]
    )


def draw_frames(folder: Path, *, plate: str, mirrored: bool) -> None:
    """`FRAMES` PNGs: a face crossing the scene (right to left when mirrored), a plate below."""
    from PIL import Image, ImageDraw, ImageFont

    face_file = _packaged_file(*FACE)
    if face_file is None:
        raise FileNotFoundError(f"{FACE[1]} from {FACE[0]} is not installed")
    with Image.open(face_file) as photo:
        face = photo.convert("RGB").crop((96, 0, 352, 256)).resize((200, 200))
    font = ImageFont.load_default(size=44)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for number in range(FRAMES):
        step = FRAMES - 1 - number if mirrored else number
        canvas = Image.new("RGB", FRAME_SIZE, (96, 104, 112))
        draw = ImageDraw.Draw(canvas)
        draw.rectangle((0, 330, FRAME_SIZE[0], FRAME_SIZE[1]), fill=(70, 70, 74))
        canvas.paste(face, (30 + 110 * step, 40))
        x = 340 - 30 * step
        draw.rectangle((x, 370, x + 240, 430), fill="white", outline="black", width=2)
        draw.text((x + 15, 375), plate, fill="black", font=font)
        canvas.save(partial / f"{number:02d}.png")
    shutil.rmtree(folder, ignore_errors=True)
    partial.replace(folder)  # whole set or nothing: a half-drawn folder is never read


def _packaged_file(distribution: str, name: str) -> Path | None:
    """A file shipped by an installed distribution, if it is there."""
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    found = (Path(str(entry.locate())) for entry in files if entry.name == name)
    return next((path for path in found if path.is_file()), None)


def shown_path(path: str) -> str:
    """`path` relative to the working directory when it lies below it (shorter to type)."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path
