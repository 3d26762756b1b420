"""`hub up`: the development supervisor (also behind `make run`).

It migrates the database, registers the demo edge node and the three demo agencies when
they are missing (`hub.cli.demo_plan`), starts `hub api`, `hub worker` and the demo agency
(`hub demo-agency`) as child processes of the same interpreter, waits until the API and the
agency answer, then runs the demo edge node: the real edge agent (`hub-edge run`, one pass
per camera, then a pause) or, with `--synthetic-demo` or when the agent cannot run, the
synthetic node. Each child's output is copied to the terminal behind its name. Ctrl-C (or
SIGTERM) is forwarded to every child; when a long-running child dies the others are stopped
too. It is a development tool: production runs each process under its own supervisor.
"""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, TextIO

import httpx
import msgspec

from hub.cli.demo_edge import ROUND_PAUSE
from hub.cli.demo_plan import DemoPlan, UpOptions, guide_lines, prepare_plan
from hub.kit.db import database_name
from hub.kit.logging import configure_logging
from hub.migrate import MigrationError, migrate
from hub.settings import Settings

SELF = "hub"
BANNER_HINT = "  (these lines come back every minute after other output, or when you press Enter)"
STATE_DIR = Path(".hub")
READY_TIMEOUT = 30.0  # seconds for the API to answer /readyz with 200
STOP_GRACE = 10.0  # seconds between asking a child to stop and killing it
BANNER_EVERY = 60.0  # seconds; the "where to look" lines come back after other output
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StartupError(Exception):
    """A part of the hub did not come up; the message names the part."""


class Output:
    """Writes whole lines from several threads to one stream, each behind its source's name."""

    def __init__(self, stream: TextIO) -> None:
        """Write to `stream` (the terminal, or a buffer in tests)."""
        self._stream = stream
        self._lock = threading.Lock()
        self.written = 0  # lines so far (the banner repeats only after other output)

    def line(self, name: str, text: str) -> None:
        """Write `name | text` as one line."""
        with self._lock:
            self._stream.write(f"{name} | {text}\n")
            self._stream.flush()
            self.written += 1


@dataclass(slots=True)
class Banner:
    """The "where to look" lines: printed when the hub is up, again every `every` seconds
    when other lines have pushed it out of sight, and on demand (Enter on a terminal)."""

    lines: list[str]
    out: Output
    every: float = BANNER_EVERY
    shown_at: float = 0.0
    written: int = -1
    asked: threading.Event = field(default_factory=threading.Event)

    def show(self) -> None:
        """Print the banner now."""
        for text in self.lines:
            self.out.line(SELF, text)
        self.shown_at, self.written = time.monotonic(), self.out.written

    def tick(self) -> None:
        """Print it again when asked, or when due and something else was written since."""
        due = time.monotonic() - self.shown_at >= self.every
        if self.asked.is_set() or (due and self.out.written > self.written):
            self.asked.clear()
            self.show()

    def listen(self, stream: TextIO) -> None:
        """Reprint on Enter (a daemon thread reading `stream`, when it is a terminal)."""
        if not stream.isatty():
            return

        def read() -> None:
            for _ in stream:
                self.asked.set()

        threading.Thread(target=read, name="banner-on-enter", daemon=True).start()


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


def supervise(settings: Settings, options: UpOptions | None = None) -> int:
    """Migrate, run API, worker and the demo parts until Ctrl-C or a core part dies."""
    out = Output(sys.stdout)
    # Development: readable (coloured) log lines from every child, and from this process,
    # unless JSON was asked for.
    if "HUB_LOG_JSON" not in os.environ:
        os.environ["HUB_LOG_JSON"] = "false"
        settings = msgspec.structs.replace(settings, log_json=False)
        configure_logging(settings)
    if not _migrate(settings, out):
        return 1
    options = options or UpOptions()
    settings = _allow_demo_agency(settings, options)
    url = api_url(settings.api_host, settings.api_port)
    plan = prepare_plan(
        settings,
        url=url,
        options=options,
        state_dir=STATE_DIR,
        say=lambda text: out.line(SELF, text),
    )
    signals = StopSignals()
    previous = {signum: signal.signal(signum, signals) for signum in _STOP_SIGNALS}
    try:
        return _run(plan, out, signals)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _allow_demo_agency(settings: Settings, options: UpOptions) -> Settings:
    """The demo agency listens on loopback, which agency endpoints may not reach unless
    allow-listed: allow 127.0.0.1/32 here (and in the children) unless networks are set."""
    if not options.agencies or settings.agency_allowed_networks:
        return settings
    os.environ["HUB_AGENCY_ALLOWED_NETWORKS"] = "127.0.0.1/32"
    return msgspec.structs.replace(settings, agency_allowed_networks="127.0.0.1/32")


def _run(plan: DemoPlan, out: Output, signals: StopSignals) -> int:
    """Start the children, watch them, stop them all; the exit status."""
    extras = [c for c in (plan.agency_command(), plan.console_command()) if c is not None]
    core = [*core_commands(), *extras]
    children = [start_child(name, argv, out=out) for name, argv in core]
    probes = [f"{plan.url}/readyz"] + ([f"{plan.agency.url}/_inbox/"] if plan.agency else [])
    if plan.console is not None:
        probes.append(f"{plan.console.url}/_stcore/health")  # Streamlit's own health route
    passes: EdgePasses | None = None
    try:
        if not wait_ready(probes, children, signals, timeout=READY_TIMEOUT):
            return 0  # stopped by a signal while starting
        passes = _start_edge(plan, children, out)
        banner = Banner(lines=[*guide_lines(plan), BANNER_HINT], out=out)
        banner.show()
        banner.listen(sys.stdin)

        def tick() -> None:
            if passes is not None:
                passes.tick()
            banner.tick()

        dead = wait_for_exit(children, signals, tick=tick)
        if dead is None:
            return 0
        code = exit_text(dead.process.returncode)
        out.line(SELF, f"{dead.name} ended unexpectedly ({code}); stopping the rest")
        return 1
    except StartupError as exc:
        out.line(SELF, f"error: {exc}")
        return 1
    finally:
        running = children + (passes.running() if passes is not None else [])
        stop_children(running, sig=signals.forward_as(), grace=STOP_GRACE, signals=signals, out=out)


def _start_edge(plan: DemoPlan, children: list[Child], out: Output) -> "EdgePasses | None":
    """Start the demo edge node: the real agent's passes, or the synthetic node as a child."""
    synthetic = plan.synthetic_command()
    commands = plan.edge_commands()
    if commands:
        return EdgePasses(commands, fallback=synthetic, children=children, out=out)
    if synthetic is not None:
        children.append(start_child(*synthetic, out=out))
    return None


@dataclass(slots=True)
class EdgePasses:
    """The real edge agent's passes: `hub-edge run` over each camera in turn, each to its end,
    then a pause. If the first pass fails, the synthetic node takes over (it joins
    `children`, so its death stops the hub like any core part's)."""

    commands: list[tuple[str, list[str]]]
    fallback: tuple[str, list[str]] | None
    children: list[Child]
    out: Output
    pause: float = ROUND_PAUSE
    current: Child | None = None
    position: int = 0
    due: float = 0.0  # time.monotonic() at which the next pass may start
    passes: int = 0
    replaced: bool = False

    def tick(self) -> None:
        """Reap a finished pass and start the next one when it is due."""
        if self.replaced:
            return
        if self.current is not None:
            code = self.current.process.poll()
            if code is None:
                return
            finished, self.current = self.current, None
            self._finished(finished, code)
        if not self.replaced and time.monotonic() >= self.due:
            name, argv = self.commands[self.position]
            self.position = (self.position + 1) % len(self.commands)
            self.current = start_child(name, argv, out=self.out)

    def running(self) -> list[Child]:
        """The pass in progress, if any (to stop it with the rest)."""
        return [] if self.current is None else [self.current]

    def _finished(self, child: Child, code: int) -> None:
        child.reader.join(timeout=2.0)
        if code == 0:
            self.passes += 1
            if self.position == 0:
                self.due = time.monotonic() + self.pause
            return
        if self.passes == 0 and self.fallback is not None:
            self.replaced = True
            self.out.line(
                SELF,
                f"{child.name} failed ({exit_text(code)}; its output is above): the real edge "
                "agent cannot run here; falling back to the synthetic demo node (edge/demo.py)",
            )
            self.children.append(start_child(*self.fallback, out=self.out))
            return
        self.out.line(
            SELF, f"{child.name} failed ({exit_text(code)}); next round in {self.pause:g} s"
        )
        self.position, self.due = 0, time.monotonic() + self.pause


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


def wait_ready(
    urls: list[str], children: list[Child], signals: StopSignals, *, timeout: float
) -> bool:
    """Poll each URL until it answers 200: True; False on a stop signal; StartupError otherwise."""
    deadline = time.monotonic() + timeout
    waiting = list(urls)
    last = "no answer yet"
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if signals.received:
                return False
            dead = first_exited(children)
            if dead is not None:
                raise StartupError(
                    f"{dead.name} ended ({exit_text(dead.process.returncode)}) before the hub "
                    "was ready; its output is above"
                )
            ready, last = _probe(client, waiting[0])
            if ready:
                waiting.pop(0)
                if not waiting:
                    return True
                continue
            time.sleep(0.5)
    raise StartupError(f"not ready within {timeout:g} s: {last}")


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
    children: list[Child],
    signals: StopSignals,
    *,
    poll: float = 0.2,
    tick: Callable[[], None] | None = None,
) -> Child | None:
    """Block until a child exits (returned) or a stop signal arrives (None); `tick` runs
    every `poll` seconds meanwhile (the edge passes) and may add children."""
    while not signals.received:
        dead = first_exited(children)
        if dead is not None:
            return dead
        if tick is not None:
            tick()
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
