"""Capture from files and folders, and the `hub-edge` command end to end against the hub."""

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import av
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edge.capture import SourceSpec, expected_frames, read_frames
from edge.cli import main
from edge.signing import load_private_key, public_key_pem
from hub.app import create_app
from hub.identity import NodeCreate, add_node
from hub.runtime import Services
from hub.settings import Settings
from tests.edge.conftest import plate_frame
from tests.support import TEST_CAMERAS, ThreadedServer


def write_clip(path: Path, *, seconds: float = 2.0, fps: int = 10) -> Path:
    """An MPEG-4 clip of a plate moving right, written with PyAV."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for number in range(int(seconds * fps)):
            image = plate_frame("KL-456-MN", x=100 + 4 * number, y=300)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def test_video_frames_are_sampled_and_stamped_from_the_media_clock(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4")
    start = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
    spec = SourceSpec(str(clip), sample_fps=2.0, clock="media", start_at=start)
    frames = list(read_frames(spec))
    assert [round(f.offset, 1) for f in frames] == [0.0, 0.5, 1.0, 1.5]
    assert frames[1].captured_at == start + timedelta(seconds=0.5)
    assert frames[0].image.shape == (480, 640, 3)
    assert expected_frames(spec) in (4, 5)


def test_image_folder_in_name_order_with_wall_clock(tmp_path: Path) -> None:
    for number in (2, 1, 3):
        Image.new("RGB", (32, 24), (number * 40, 0, 0)).save(tmp_path / f"{number}.png")
    (tmp_path / "notes.txt").write_text("ignored")
    before = datetime.now(UTC)
    frames = list(read_frames(SourceSpec(str(tmp_path))))
    assert [int(f.image[0, 0, 0]) for f in frames] == [40, 80, 120]
    assert all(f.captured_at >= before and f.captured_at.tzinfo is UTC for f in frames)
    assert expected_frames(SourceSpec(str(tmp_path))) == 3


def test_keygen_writes_a_private_key_and_prints_the_public_one(tmp_path: Path) -> None:
    out = tmp_path / "node.key"
    result = CliRunner().invoke(main, ["keygen", "--out", str(out)])
    assert result.exit_code == 0, result.output
    key = load_private_key(out.read_bytes())
    assert public_key_pem(key) in result.output
    assert out.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "node.pub").read_text() == public_key_pem(key)
    again = CliRunner().invoke(main, ["keygen", "--out", str(out)])
    assert again.exit_code != 0


def write_config(folder: Path, *, hub_url: str, node_id: str, source: str) -> Path:
    config = folder / "edge.toml"
    config.write_text(
        f"""
[hub]
url = "{hub_url}"
node_id = "{node_id}"
key_file = "node.key"

[camera]
id = "gate-1"
source = "{source}"
sample_fps = 5

[[detectors]]
kind = "centerface"

[[detectors]]
kind = "plate"

[spool]
path = "state/spool.sqlite"

[upload]
idle_interval = 0.1
drain_timeout = 20
"""
    )
    return config


@pytest.mark.db
@pytest.mark.redis
@pytest.mark.slow
async def test_run_on_a_clip_uploads_faces_and_plates_signed(
    settings: Settings,
    services: Services,
    tmp_path: Path,
    model_cache: Path,
    astronaut: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["keygen", "--out", str(tmp_path / "node.key")]).exit_code == 0
    key = load_private_key((tmp_path / "node.key").read_bytes())
    node = await add_node(
        services.db,
        NodeCreate(
            name=f"edge-{uuid.uuid4().hex[:6]}",
            public_key=public_key_pem(key),
            cameras=list(TEST_CAMERAS),
        ),
        actor="test",
    )
    frames = tmp_path / "frames"
    frames.mkdir()
    for number in range(6):
        image = plate_frame("AB-123-CD", x=60 + 10 * number, y=380).copy()
        image[:300, 300:600] = np.asarray(Image.fromarray(astronaut).resize((300, 300)))
        Image.fromarray(image).save(frames / f"{number:03}.png")
    monkeypatch.setenv("HUB_EDGE_MODEL_CACHE", str(model_cache))
    with ThreadedServer(create_app(settings)) as server:
        config = write_config(tmp_path, hub_url=server.url, node_id=str(node.id), source="frames")
        result = await _invoke(runner, ["run", "--config", str(config), "--progress"])
    assert result.exit_code == 0, result.output
    assert "spool empty" in result.output
    status = json.loads(runner.invoke(main, ["status", "--config", str(config), "--json"]).output)
    # One face standing still and one plate sliding along: one track each, one event each.
    assert (status["pending"], status["rejected"], status["sent"]) == (0, 0, 2)
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch(
            "SELECT payload->>'model_name' AS model_name FROM detection_event WHERE node_id = $1",
            node.id,
        )
    finally:
        await conn.close()
    assert sorted(r["model_name"] for r in rows) == ["centerface", "rapidocr"]
    assert status["media"] == 0  # snapshots went with their events


async def _invoke(runner: CliRunner, args: list[str]) -> object:
    """Run the CLI off the event loop (it runs its own)."""
    import asyncio

    return await asyncio.to_thread(runner.invoke, main, args)


def test_dash_h_is_help_everywhere() -> None:
    from click.testing import CliRunner

    from edge.cli import main

    runner = CliRunner()
    for path in ([], *([name] for name in main.commands)):
        result = runner.invoke(main, [*path, "-h"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage: " in result.output


def test_help_imports_no_detector_or_video_code() -> None:
    probe = (
        "import sys; from edge.cli import main\n"
        "try:\n    main(['-h'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('edge.agent', 'onnx', 'onnxruntime', 'av', 'cv2') "
        "if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert "Usage:" in out
    assert "HEAVY []" in out
