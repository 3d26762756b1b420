"""`hub up`: the development supervisor (also behind `make run`).

It migrates the database, starts `hub api` and `hub worker` as child processes of the same
interpreter, waits until the API is ready, then starts the demo edge node (registering it
first when needed). Each child's output is copied to the terminal behind its name. Ctrl-C
(or SIGTERM) is forwarded to every child; when any child dies the others are stopped too.
It is a development tool: production runs each process under its own supervisor.
"""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, TextIO

import httpx
import msgspec

from hub.cli.demo_node import DemoNode, ensure_demo_node
from hub.kit.db import database_name
from hub.kit.errors import HubError
from hub.migrate import MigrationError, migrate
from hub.runtime import build_services, start_services, stop_services
from hub.settings import Settings

SELF = "hub"
STATE_DIR = Path(".hub")
READY_TIMEOUT = 30.0  # seconds for the API to answer /readyz with 200
STOP_GRACE = 10.0  # seconds between asking a child to stop and killing it
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StartupError(Exception):
    """A part of the hub did not come up; the message names the part."""


class Output:
    """Writes whole lines from several threads to one stream, each behind its source's name."""

    def __init__(self, stream: TextIO) -> None:
        """Write to `stream` (the terminal, or a buffer in tests)."""
        self._stream = stream
        self._lock = threading.Lock()

    def line(self, name: str, text: str) -> None:
        """Write `name | text` as one line."""
        with self._lock:
            self._stream.write(f"{name} | {text}\n")
            self._stream.flush()


class StopSignals:
    """Signal handler that only records; the supervisor's loop decides what to do."""

    def __init__(self) -> None:
        """Nothing received yet."""
        self.received: list[int] = []

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        """Record `signum`."""
        self.received.append(signum)

    def forward_as(self) -> signal.Signals:
        """The signal to pass on to children: Ctrl-C stays SIGINT, anything else is SIGTERM."""
        first = self.received[0] if self.received else signal.SIGTERM
        return signal.SIGINT if first == signal.SIGINT else signal.SIGTERM


@dataclass(slots=True)
class Child:
    """A supervised process and the thread copying its output."""

    name: str
    process: "subprocess.Popen[bytes]"
    reader: threading.Thread


def supervise(settings: Settings, *, demo: bool) -> int:
    """Migrate, run API and worker (and the demo edge node) until Ctrl-C or a child dies."""
    out = Output(sys.stdout)
    if not _migrate(settings, out):
        return 1
    node = _prepare_demo(settings, out) if demo else None
    url = api_url(settings.api_host, settings.api_port)
    signals = StopSignals()
    previous = {signum: signal.signal(signum, signals) for signum in _STOP_SIGNALS}
    try:
        return _run(url, node, guide_lines(url, node, demo=demo), out, signals)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run(
    url: str, node: DemoNode | None, guide: list[str], out: Output, signals: StopSignals
) -> int:
    """Start the children, watch them, stop them all; the exit status."""
    children = [start_child(name, argv, out=out) for name, argv in core_commands()]
    try:
        if not wait_ready(url, children, signals, timeout=READY_TIMEOUT):
            return 0  # stopped by a signal while starting
        if node is not None:
            children.append(start_child("edge", demo_command(url, node), out=out))
        for text in guide:
            out.line(SELF, text)
        dead = wait_for_exit(children, signals)
        if dead is None:
            return 0
        code = exit_text(dead.process.returncode)
        out.line(SELF, f"{dead.name} ended unexpectedly ({code}); stopping the rest")
        return 1
    except StartupError as exc:
        out.line(SELF, f"error: {exc}")
        return 1
    finally:
        stop_children(
            children, sig=signals.forward_as(), grace=STOP_GRACE, signals=signals, out=out
        )


def _migrate(settings: Settings, out: Output) -> bool:
    """Apply pending migrations; False (after saying why) when the database is not usable."""
    name = database_name(settings.database_url)
    try:
        report = asyncio.run(migrate(settings))
    except MigrationError as exc:
        out.line(SELF, f"error: migrating database {name!r} failed: {exc}")
        return False
    except OSError as exc:
        out.line(SELF, f"error: cannot reach PostgreSQL for database {name!r}: {exc}")
        return False
    created = "created" if report.database_created else "present"
    out.line(SELF, f"database {name!r} {created}; {len(report.applied)} migration(s) applied")
    return True


def _prepare_demo(settings: Settings, out: Output) -> DemoNode | None:
    """The demo node to run, registered if needed; None (after saying why) if there is none."""

    async def work() -> DemoNode | None:
        services = build_services(msgspec.structs.replace(settings, db_pool_min=1, db_pool_max=2))
        await start_services(services)
        try:
            return await ensure_demo_node(
                services.db, state_dir=STATE_DIR, say=lambda text: out.line(SELF, text)
            )
        finally:
            await stop_services(services)

    try:
        return asyncio.run(work())
    except (HubError, OSError, ValueError) as exc:
        out.line(SELF, f"demo edge node not started: {exc}")
        return None


def api_url(host: str, port: int) -> str:
    """Where a local client reaches an API bound to `host` (a wildcard means loopback)."""
    wildcards = {"", "0.0.0.0", "::"}  # noqa: S104 - recognising binds, not binding
    client_host = ("127.0.0.1" if host != "::" else "::1") if host in wildcards else host
    if ":" in client_host:
        client_host = f"[{client_host}]"
    return f"http://{client_host}:{port}"


def core_commands() -> list[tuple[str, list[str]]]:
    """The API and worker processes, run by this same interpreter (unbuffered output)."""
    base = [sys.executable, "-u", "-m", "hub.cli.main"]
    return [("api", [*base, "api"]), ("worker", [*base, "worker"])]


def demo_command(url: str, node: DemoNode) -> list[str]:
    """The demo edge node's command line."""
    args = ["--hub-url", url, "--node-id", str(node.node_id), "--key", node.key_path]
    return [sys.executable, "-u", "-m", "edge.demo", *args]


def start_child(name: str, argv: Sequence[str], *, out: Output) -> Child:
    """Start a child in its own process group, so Ctrl-C reaches it only through us."""
    process = subprocess.Popen(  # noqa: S603 - argv is built here, not taken from input
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        process_group=0,
    )
    source = process.stdout
    if source is None:  # cannot happen with stdout=PIPE; keeps the type exact
        raise RuntimeError(f"{name} has no output pipe")
    reader = threading.Thread(
        target=pump, args=(name, source, out), name=f"hub-up-{name}", daemon=True
    )
    reader.start()
    return Child(name=name, process=process, reader=reader)


def pump(name: str, source: IO[bytes], out: Output) -> None:
    """Copy `source` line by line to `out` behind `name` until it closes."""
    with source:
        for raw in iter(source.readline, b""):
            out.line(name, raw.decode("utf-8", errors="replace").rstrip("\r\n"))


def wait_ready(url: str, children: list[Child], signals: StopSignals, *, timeout: float) -> bool:
    """Poll `/readyz` until 200: True; False on a stop signal; StartupError otherwise."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if signals.received:
                return False
            dead = first_exited(children)
            if dead is not None:
                raise StartupError(
                    f"{dead.name} ended ({exit_text(dead.process.returncode)}) before the API "
                    "was ready; its output is above"
                )
            ready, last = _probe(client, f"{url}/readyz")
            if ready:
                return True
            time.sleep(0.5)
    raise StartupError(f"the API at {url} was not ready within {timeout:g} s: {last}")


def _probe(client: httpx.Client, url: str) -> tuple[bool, str]:
    """Ask `/readyz` once: ready or not, and what failed."""
    try:
        response = client.get(url)
    except httpx.HTTPError as exc:
        return False, f"{url} did not answer ({type(exc).__name__})"
    if response.status_code == 200:
        return True, "ready"
    try:
        checks = response.json().get("checks", {})
        failing = "; ".join(f"{k}: {v}" for k, v in checks.items() if not str(v).startswith("ok"))
    except (ValueError, AttributeError):
        failing = response.text[:200]
    return False, f"{url} answered {response.status_code} ({failing or 'no detail'})"


def first_exited(children: list[Child]) -> Child | None:
    """The first child that has exited, if any."""
    return next((c for c in children if c.process.poll() is not None), None)


def wait_for_exit(
    children: list[Child], signals: StopSignals, *, poll: float = 0.2
) -> Child | None:
    """Block until a child exits (returned) or a stop signal arrives (None)."""
    while not signals.received:
        dead = first_exited(children)
        if dead is not None:
            return dead
        time.sleep(poll)
    return None


def stop_children(
    children: list[Child],
    *,
    sig: signal.Signals,
    grace: float,
    signals: StopSignals,
    out: Output,
) -> None:
    """Send `sig` to every running child, wait up to `grace` s, kill the rest, reap all."""
    running = [c for c in children if c.process.poll() is None]
    for child in running:
        _signal_group(child, sig)
    asked = len(signals.received)
    deadline = time.monotonic() + grace
    while first_running(running) and time.monotonic() < deadline:
        if len(signals.received) > asked:
            break  # asked again (a second Ctrl-C): do not wait any longer
        time.sleep(0.1)
    for child in running:
        if child.process.poll() is None:
            out.line(SELF, f"{child.name} did not stop within {grace:g} s; killing it")
            _signal_group(child, signal.SIGKILL)
    for child in children:
        child.process.wait()
        child.reader.join(timeout=2.0)
    if children:
        codes = ", ".join(f"{c.name} ({exit_text(c.process.returncode)})" for c in children)
        out.line(SELF, f"stopped: {codes}")


def exit_text(code: int) -> str:
    """`exit 3`, or `SIGTERM` for a process ended by a signal (uvicorn re-raises it)."""
    if code >= 0:
        return f"exit {code}"
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def first_running(children: list[Child]) -> Child | None:
    """The first child still running, if any."""
    return next((c for c in children if c.process.poll() is None), None)


def _signal_group(child: Child, sig: signal.Signals) -> None:
    """Signal the child's whole process group (it leads one), ignoring one already gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.process.pid, sig)


def guide_lines(url: str, node: DemoNode | None, *, demo: bool) -> list[str]:
    """The short "where to look" block printed once the hub is up."""
    if node is not None:
        edge = f"node {node.node_id} posts a batch every 2 s (key {node.key_path})"
    else:
        edge = "not running (see above)" if demo else "off (--no-demo)"
    return [
        "the hub is up; where to look:",
        f"  API          {url}",
        f"  OpenAPI      {url}/schema",
        f"  readiness    {url}/readyz   liveness {url}/healthz",
        "  logs         here, each line behind its source: api | worker | edge |",
        f"  demo edge    {edge}",
        "  edge nodes   hub nodes list",
        "  audit chain  hub audit verify",
        "  stop         Ctrl-C stops every part",
    ]
