"""RTSP capture against a real RTSP server on loopback (GStreamer's gst-rtsp-server).

The server runs under the system Python with Debian's PyGObject and GStreamer packages, which
`scripts/rtsp-test-server.sh` (run by `make test`) installs when we are root. Without them
these tests are skipped with the reason; on CI as root they must be there, so they fail.
"""

import functools
import logging
import os
import queue
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import IO

import pytest

from edge.agent import AgentReport, Pipeline, capture_into_spool, source_spec
from edge.capture import Frame, read_frames
from edge.config import load_config
from edge.spool import Spool

SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"
SOURCE_FPS = 10
SAMPLE_FPS = 5.0


def _server_env() -> dict[str, str]:
    """Our environment minus what would point the system Python at the venv."""
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
    return {k: v for k, v in os.environ.items() if k not in drop}


@functools.cache
def _unavailable() -> str | None:
    """Why the RTSP server cannot run here, or None."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found"
    check = subprocess.run(  # noqa: S603 - fixed arguments
        [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--check"],
        capture_output=True,
        text=True,
        env=_server_env(),
        timeout=30,
        check=False,
    )
    if check.returncode == 0:
        return None
    return check.stdout.strip() or check.stderr.strip() or f"exit {check.returncode}"


def _require_server() -> None:
    reason = _unavailable()
    if reason is None:
        return
    message = f"no RTSP test server ({reason}); run scripts/rtsp-test-server.sh as root"
    could_install = os.geteuid() == 0 and shutil.which("apt-get") is not None
    if os.environ.get("CI") == "true" and could_install:
        pytest.fail(message)  # CI runs `make test` as root: the install must have worked
    sys.stderr.write(f"\nSKIP {message}\n")  # also in the -ra summary
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RtspServer:
    """`tests/edge/rtsp_server.py` as a subprocess that can be killed and started again."""

    def __init__(self, port: int, codec: str) -> None:
        self.port = port
        self.codec = codec
        self.url = f"rtsp://127.0.0.1:{port}/test"
        self.process: subprocess.Popen[str] | None = None
        self.lines: queue.Queue[str] = queue.Queue()

    def start(self, *, within: float = 20.0) -> None:
        """Start the server and wait until it listens."""
        self.process = subprocess.Popen(  # noqa: S603 - fixed arguments
            [
                SYSTEM_PYTHON,
                str(SERVER_SCRIPT),
                f"--port={self.port}",
                f"--codec={self.codec}",
                f"--fps={SOURCE_FPS}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_server_env(),
        )
        stdout = self.process.stdout
        assert stdout is not None
        threading.Thread(target=self._pump, args=(stdout,), daemon=True).start()
        deadline = time.monotonic() + within
        seen: list[str] = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            seen.append(line)
            if line.startswith("READY"):
                return
        self.kill()
        pytest.fail(f"RTSP server did not start on port {self.port}: {seen}")

    def _pump(self, stdout: IO[str]) -> None:
        for line in stdout:
            self.lines.put(line.strip())

    def kill(self) -> None:
        """SIGKILL: the stream drops without an RTSP TEARDOWN."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait(timeout=10)
            if self.process.stdout is not None:
                self.process.stdout.close()


@pytest.fixture(params=["h264", "mjpeg"])
def rtsp_server(request: pytest.FixtureRequest) -> Iterator[RtspServer]:
    """A running RTSP server on a free loopback port, in the codec of the parameter."""
    _require_server()
    server = RtspServer(_free_port(), request.param)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _config(tmp_path: Path, url: str) -> Path:
    """An edge.toml as a user writes it, with the RTSP URL as the camera source."""
    path = tmp_path / "edge.toml"
    path.write_text(
        f"""
[hub]
url = "http://127.0.0.1:9"
node_id = "00000000-0000-0000-0000-000000000000"
key_file = "edge.key"

[camera]
id = "rtsp-1"
source = "{url}"
sample_fps = {SAMPLE_FPS}
clock = "wall"

[spool]
path = "spool.sqlite"
""",
        encoding="utf-8",
    )
    return path


def _take(frames: Iterator[Frame], count: int, *, within: float) -> list[Frame]:
    """The next `count` frames, failing if they take longer than `within` seconds."""
    deadline = time.monotonic() + within
    taken: list[Frame] = []
    for frame in frames:
        taken.append(frame)
        if len(taken) == count:
            return taken
        assert time.monotonic() < deadline, f"only {len(taken)} frames in {within} s"
    raise AssertionError(f"the stream ended after {len(taken)} frames")


def _assert_sampled(frames: list[Frame], *, started: datetime) -> None:
    """UTC capture times, now-ish, at SAMPLE_FPS; real 320x240 pixels."""
    now = datetime.now(UTC)
    for frame in frames:
        assert frame.captured_at.tzinfo is UTC
        assert started <= frame.captured_at <= now
        assert frame.image.shape == (240, 320, 3)
        assert frame.image.std() > 1.0  # a picture, not a blank buffer
    steady = frames[2:]  # the first frames can arrive in a burst buffered while probing
    span = (steady[-1].captured_at - steady[0].captured_at).total_seconds()
    rate = (len(steady) - 1) / span
    assert SAMPLE_FPS * 0.8 <= rate <= SAMPLE_FPS * 1.2, f"{rate:.2f} frames/s"
    gaps = [(b - a).total_seconds() for a, b in pairwise(f.captured_at for f in steady)]
    assert abs(statistics.median(gaps) - 1 / SAMPLE_FPS) < 0.2 / SAMPLE_FPS, gaps


def test_rtsp_frames_arrive_with_utc_times_at_the_sampling_rate(
    tmp_path: Path, rtsp_server: RtspServer
) -> None:
    spec = source_spec(load_config(_config(tmp_path, rtsp_server.url)))
    assert spec.is_stream
    assert spec.source == rtsp_server.url
    stop = threading.Event()
    started = datetime.now(UTC)
    frames = _take(read_frames(spec, stop=stop), 14, within=30)
    _assert_sampled(frames, started=started)
    assert [f.index for f in frames] == list(range(14))


@pytest.mark.parametrize("rtsp_server", ["h264"], indirect=True)  # what cameras send
def test_rtsp_drop_is_reported_and_capture_reconnects(
    tmp_path: Path, rtsp_server: RtspServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge.capture")
    spec = source_spec(load_config(_config(tmp_path, rtsp_server.url)))
    stop = threading.Event()
    frames = read_frames(spec, stop=stop)
    before = _take(frames, 4, within=30)

    rtsp_server.kill()
    killed_at = datetime.now(UTC)
    # Read on in a thread: nothing arrives while the server is down.
    got: queue.Queue[Frame | BaseException] = queue.Queue()

    def reader() -> None:
        try:
            for frame in frames:
                got.put(frame)
        except BaseException as exc:  # handed to the test thread
            got.put(exc)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    late = []  # frames decoded before the drop was noticed
    outage_until = time.monotonic() + 3.0
    while time.monotonic() < outage_until:
        try:
            item = got.get(timeout=0.1)
        except queue.Empty:
            continue
        assert not isinstance(item, BaseException), item
        late.append(item)
    assert all(f.captured_at <= killed_at + timedelta(seconds=1) for f in late), late
    lost = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lost) == 1, caplog.text  # reported once per outage, not once per retry
    assert lost[0].startswith(f"stream {rtsp_server.url} lost ("), lost
    assert thread.is_alive()  # still trying, not crashed

    restarted_at = datetime.now(UTC)
    rtsp_server.start()
    after: list[Frame] = []
    deadline = time.monotonic() + 30
    while len(after) < 8 and time.monotonic() < deadline:
        try:
            item = got.get(timeout=0.5)
        except queue.Empty:
            continue
        assert not isinstance(item, BaseException), item
        if item.captured_at >= restarted_at:
            after.append(item)
    assert len(after) == 8, f"{len(after)} frames after the server came back"
    assert any("is back after" in r.getMessage() for r in caplog.records), caplog.text
    _assert_sampled(after, started=restarted_at)
    indices = [f.index for f in before + late + after]
    assert indices == sorted(set(indices))  # one numbering across the reconnect

    stop.set()
    thread.join(timeout=15)
    assert not thread.is_alive(), "capture did not stop on the stop event"


@pytest.mark.parametrize("rtsp_server", ["mjpeg"], indirect=True)  # the fastest to open
def test_the_agent_captures_rtsp_until_halted(tmp_path: Path, rtsp_server: RtspServer) -> None:
    config = load_config(_config(tmp_path, rtsp_server.url))
    seen: list[int] = []
    report = AgentReport()
    halt = threading.Event()
    spool = Spool(tmp_path / "spool.sqlite", max_bytes=1 << 20)
    worker = threading.Thread(
        target=capture_into_spool,
        args=(Pipeline(config.camera.id, []), source_spec(config), spool),
        kwargs={"stop": halt, "report": report, "progress": lambda n, total: seen.append(n)},
        daemon=True,
    )
    worker.start()
    deadline = time.monotonic() + 30
    while report.frames < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    halt.set()
    worker.join(timeout=15)
    spool.close()
    assert not worker.is_alive()
    assert report.frames >= 5
    assert seen[:5] == [1, 2, 3, 4, 5]
