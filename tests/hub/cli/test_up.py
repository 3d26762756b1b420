"""The pieces of `hub up` that can be exercised without starting the whole hub: output
prefixing, child supervision, and registering the demo edge node on a real database."""

import io
import signal
import sys
import time
from pathlib import Path

import msgspec
import pytest

from hub.cli.demo_node import ensure_demo_node
from hub.cli.up import (
    Banner,
    Output,
    StopSignals,
    api_url,
    pump,
    start_child,
    stop_children,
    wait_for_exit,
)
from hub.identity import list_cameras, list_nodes, revoke_node
from hub.runtime import Services

# --- the supervisor's pieces ------------------------------------------------------


def test_pump_prefixes_every_line() -> None:
    buffer = io.StringIO()
    pump("api", io.BytesIO(b"started\r\nbad \xff byte\nlast"), Output(buffer))
    assert buffer.getvalue() == "api | started\napi | bad \ufffd byte\napi | last\n"


def test_api_url_maps_wildcard_binds_to_loopback() -> None:
    assert api_url("0.0.0.0", 8765) == "http://127.0.0.1:8765"  # noqa: S104
    assert api_url("::", 80) == "http://[::1]:80"
    assert api_url("hub.local", 8000) == "http://hub.local:8000"


def test_a_dying_child_is_reported_and_the_rest_stopped() -> None:
    buffer = io.StringIO()
    out, signals = Output(buffer), StopSignals()
    sleeper = start_child(
        "sleeper", [sys.executable, "-c", "import time; print('up'); time.sleep(60)"], out=out
    )
    quitter = start_child("quitter", [sys.executable, "-c", "print('bye'); exit(3)"], out=out)
    dead = wait_for_exit([sleeper, quitter], signals, poll=0.02)
    stop_children([sleeper, quitter], sig=signal.SIGTERM, grace=5, signals=signals, out=out)
    assert dead is quitter
    assert quitter.process.returncode == 3
    assert sleeper.process.returncode == -signal.SIGTERM
    assert "quitter | bye\n" in buffer.getvalue()
    assert "hub | stopped: sleeper (SIGTERM), quitter (exit 3)\n" in buffer.getvalue()


def test_a_child_ignoring_sigterm_is_killed_after_the_grace() -> None:
    buffer = io.StringIO()
    out, signals = Output(buffer), StopSignals()
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ok')\n"
    stubborn = start_child(
        "stubborn", [sys.executable, "-u", "-c", code + "time.sleep(60)"], out=out
    )
    deadline = time.monotonic() + 10
    while "stubborn | ok" not in buffer.getvalue() and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    stop_children([stubborn], sig=signal.SIGTERM, grace=0.5, signals=signals, out=out)
    assert time.monotonic() - started < 5
    assert stubborn.process.returncode == -signal.SIGKILL
    assert "stubborn did not stop within 0.5 s; killing it" in buffer.getvalue()


# --- registering the demo node ----------------------------------------------------


@pytest.mark.db
async def test_demo_node_is_registered_once_and_reused(services: Services, tmp_path: Path) -> None:
    said: list[str] = []
    first = await ensure_demo_node(services.db, state_dir=tmp_path, say=said.append)
    second = await ensure_demo_node(services.db, state_dir=tmp_path, say=said.append)

    assert first is not None
    assert second == first
    nodes = await list_nodes(services.db)
    assert [(n.id, n.name) for n in nodes] == [(first.node_id, "demo-edge")]
    key_file = tmp_path / "demo-node.key"
    assert first.key_path == str(key_file)
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert msgspec.json.decode((tmp_path / "demo-node.json").read_bytes())["node_id"] == str(
        first.node_id
    )
    assert len(said) == 1
    # The demo node owns the demo cameras, where the default bundle's recipients expect them.
    cameras = {c.camera_id: (c.node_id, c.jurisdiction) for c in await list_cameras(services.db)}
    assert cameras == {
        "demo-cam-1": (first.node_id, "north"),
        "demo-cam-2": (first.node_id, "central"),
        "demo-cam-3": (first.node_id, "central"),
    }


@pytest.mark.db
async def test_demo_node_without_its_key_is_not_replaced_until_revoked(
    services: Services, tmp_path: Path
) -> None:
    said: list[str] = []
    first = await ensure_demo_node(services.db, state_dir=tmp_path, say=said.append)
    assert first is not None
    (tmp_path / "demo-node.key").unlink()

    stuck = await ensure_demo_node(services.db, state_dir=tmp_path, say=said.append)
    assert stuck is None
    assert "hub nodes revoke demo-edge" in said[-1]

    await revoke_node(services.db, "demo-edge", reason="demo key lost", actor="test")
    fresh = await ensure_demo_node(services.db, state_dir=tmp_path, say=said.append)
    assert fresh is not None
    assert fresh.node_id != first.node_id
    names = {n.name: n.status for n in await list_nodes(services.db)}
    assert names == {"demo-edge": "revoked", "demo-edge-2": "active"}
    # The new demo node took the cameras back from the revoked one.
    owners = {c.node_id for c in await list_cameras(services.db)}
    assert owners == {fresh.node_id}


def test_banner_comes_back_after_other_output_or_when_asked() -> None:
    stream = io.StringIO()
    out = Output(stream)
    banner = Banner(lines=["where to look:", "  API http://x"], out=out, every=0.0)
    banner.show()
    banner.tick()  # nothing else was written: no repeat
    assert stream.getvalue().count("where to look:") == 1
    out.line("worker", "3 jobs in 10 s")
    banner.tick()
    assert stream.getvalue().count("where to look:") == 2
    slow = Banner(lines=["where to look:"], out=out, every=3600.0)
    slow.show()
    out.line("api", "a line")
    slow.tick()  # not yet due
    assert stream.getvalue().count("where to look:") == 3
    slow.asked.set()  # Enter pressed
    slow.tick()
    assert stream.getvalue().count("where to look:") == 4
    assert stream.getvalue().endswith("hub | where to look:\n")
