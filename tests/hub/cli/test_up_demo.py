"""The demo parts of `hub up`: the demo agencies and their trust files, the real edge agent's
input and passes, the "where to look" text, and `hub up` end to end on loopback."""

import asyncio
import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from uuid import uuid4

import httpx
import msgspec
import pytest

from edge.config import load_config
from hub.audit import AuditQuery, search
from hub.cli.demo_agencies import (
    DEMO_AGENCIES,
    DemoAgency,
    agency_command,
    ensure_demo_agencies,
    load_trust,
)
from hub.cli.demo_console import (
    CREDENTIALS_FILE,
    USERNAME,
    _save_credentials,
    ensure_demo_officer,
)
from hub.cli.demo_edge import agent_unavailable, prepare_edge_demo
from hub.cli.demo_node import DemoNode
from hub.cli.demo_plan import DemoPlan, UpOptions, guide_lines
from hub.cli.up import Child, EdgePasses, Output, StopSignals, stop_children
from hub.delivery.agencies import list_agencies
from hub.identity.oauth import UserCreate, add_user, list_users, set_user_scope
from hub.runtime import Services
from hub.settings import Settings
from tests.hub.delivery.harness import settings_env, statuses
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[3]

# --- the demo agencies --------------------------------------------------------------


def test_trust_files_are_made_once_and_private(tmp_path: Path) -> None:
    first = load_trust(tmp_path)
    again = load_trust(tmp_path)
    assert again == first
    assert first.secret.startswith("whsec_")
    folder = tmp_path / "demo-agency"
    assert (folder / "webhook-secret").stat().st_mode & 0o777 == 0o600
    assert Path(first.key_file).stat().st_mode & 0o777 == 0o600
    assert Path(first.cert_file).parent == folder.resolve()


def test_half_an_xml_identity_is_refused_not_replaced(tmp_path: Path) -> None:
    trust = load_trust(tmp_path)
    Path(trust.cert_file).unlink()
    with pytest.raises(ValueError, match="half an XML signing identity"):
        load_trust(tmp_path)
    assert Path(trust.key_file).exists()


@pytest.mark.db
async def test_demo_agencies_are_registered_once(services: Services, tmp_path: Path) -> None:
    said: list[str] = []
    trust = load_trust(tmp_path)
    adapters = services.delivery.adapters
    first = await ensure_demo_agencies(
        services.db, adapters, port=8101, trust=trust, say=said.append
    )
    again = await ensure_demo_agencies(
        services.db, adapters, port=8101, trust=trust, say=said.append
    )

    assert again == first
    assert first.url == "http://127.0.0.1:8101"
    assert first.secrets == [trust.secret]
    assert first.xml_cert == trust.cert_file
    found = {a.name: a for a in await list_agencies(services.db)}
    assert {(a.name, a.kind) for a in found.values()} == {(s.name, s.kind) for s in DEMO_AGENCIES}
    assert found["transit-authority"].endpoint.startswith("http://127.0.0.1:8101/soap/agency")
    assert found["police-north"].jurisdictions == ["north"]
    assert len(said) == 3  # one line per agency registered, nothing the second time


@pytest.mark.db
async def test_existing_agencies_are_trusted_as_registered(
    services: Services, tmp_path: Path
) -> None:
    said: list[str] = []
    old = load_trust(tmp_path / "old")
    adapters = services.delivery.adapters
    await ensure_demo_agencies(services.db, adapters, port=8101, trust=old, say=said.append)

    new = load_trust(tmp_path / "new")  # .hub/demo-agency/ was removed, the agencies stayed
    agency = await ensure_demo_agencies(
        services.db, adapters, port=9101, trust=new, say=said.append
    )

    assert agency.secrets == [new.secret, old.secret]
    assert agency.xml_cert == old.cert_file
    assert sum("not the demo agency at http://127.0.0.1:9101" in s for s in said) == 3
    argv = agency_command(agency)
    assert argv[argv.index("--port") + 1] == "9101"
    assert not any(s in " ".join(argv) for s in agency.secrets)  # never on the command line
    secrets_file = Path(argv[argv.index("--secret-file") + 1])
    assert secrets_file.read_text().split() == [new.secret, old.secret]
    assert secrets_file.stat().st_mode & 0o777 == 0o600


async def _officer(services: Services, name: str = USERNAME) -> tuple[list[str], int]:
    found = next(u for u in await list_users(services.identity) if u.username == name)
    return sorted(found.jurisdictions), found.clearance


@pytest.mark.db
async def test_an_old_demo_officer_is_brought_up_to_the_demo_on_every_run(
    services: Services, tmp_path: Path
) -> None:
    # What an earlier `hub up` left: the officer with nothing to see, and its credentials file.
    await add_user(
        services.identity,
        UserCreate(username=USERNAME, password="x" * 16, roles=["compliance_officer"]),
        actor="hub-up",
    )
    _save_credentials(tmp_path / CREDENTIALS_FILE, "x" * 16)
    said: list[str] = []
    assert await _officer(services) == ([], 0)

    await ensure_demo_officer(services, state_dir=tmp_path, url="http://c", say=said.append)
    raised = await _officer(services)
    await ensure_demo_officer(services, state_dir=tmp_path, url="http://c", say=said.append)

    assert raised == (["central", "north"], 3)
    assert await _officer(services) == raised
    assert said == [f"{USERNAME} now sees central, north at clearance 3"]  # once
    page = await search(services.db.pool, AuditQuery(action="user.scope"), limit=10)
    assert [(e.target, e.detail["previous_clearance"]) for e in page.entries] == [
        (f"user:{USERNAME}", 0)
    ]


@pytest.mark.db
async def test_only_the_account_hub_up_made_is_changed(services: Services, tmp_path: Path) -> None:
    # A demo-officer registered by someone else (no credentials file of hub up's) and one
    # with more than the demo keep what they have.
    await add_user(
        services.identity,
        UserCreate(username=USERNAME, password="x" * 16, roles=["compliance_officer"]),
        actor="someone",
    )
    said: list[str] = []
    await ensure_demo_officer(services, state_dir=tmp_path, url="http://c", say=said.append)
    assert await _officer(services) == ([], 0)
    assert "exists but" in said[0]

    await set_user_scope(
        services.identity, USERNAME, jurisdictions=["south"], clearance=4, actor="test"
    )
    _save_credentials(tmp_path / CREDENTIALS_FILE, "x" * 16)
    await ensure_demo_officer(services, state_dir=tmp_path, url="http://c", say=said.append)
    assert await _officer(services) == (["central", "north", "south"], 4)


# --- the real edge agent's input and passes -------------------------------------------


def test_edge_input_is_drawn_once_and_configs_load(tmp_path: Path) -> None:
    if agent_unavailable() is not None:
        pytest.skip(f"edge agent unavailable: {agent_unavailable()}")
    node = DemoNode(node_id=uuid4(), key_path=str(tmp_path / "demo-node.key"))
    demo = prepare_edge_demo(tmp_path, hub_url="http://127.0.0.1:8000", node=node)
    frames = sorted((tmp_path / "demo-edge" / "frames" / "demo-cam-1").glob("*.png"))
    stamps = [f.stat().st_mtime_ns for f in frames]
    prepare_edge_demo(tmp_path, hub_url="http://127.0.0.1:9000", node=node)

    assert [camera for camera, _ in demo.configs] == ["demo-cam-1", "demo-cam-2"]
    assert len(frames) == 4
    assert [f.stat().st_mtime_ns for f in frames] == stamps
    config = load_config(Path(demo.configs[1][1]))
    assert config.camera.id == "demo-cam-2"
    assert config.hub.url == "http://127.0.0.1:9000"  # rewritten at every start
    assert config.hub.node_id == str(node.node_id)
    assert [d.kind for d in config.detectors] == ["centerface", "plate"]


def _python(code: str) -> list[str]:
    return [sys.executable, "-u", "-c", code]


def test_demo_looks_for_the_models_where_the_agent_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo agent counts fetched models (the agent's models folder) as well as installed
    wheels, and names the fetch command when neither has them."""
    if agent_unavailable() is not None:
        pytest.skip(f"edge agent unavailable: {agent_unavailable()}")
    import edge.models.store as store
    from edge.models.pins import KIND_MODELS, MODELS

    installed = {name: store.model_file(name) for name in MODELS}
    monkeypatch.setattr(store, "_installed", lambda model: [])  # as after a plain pip install
    monkeypatch.setenv("HUB_EDGE_MODELS_DIR", str(tmp_path))
    reason = agent_unavailable()
    assert reason is not None
    assert "hub-edge models fetch" in reason
    for name in (*KIND_MODELS["centerface"], *KIND_MODELS["plate"]):
        assert name in reason
        (tmp_path / name).write_bytes(installed[name].read_bytes())  # as fetched
    assert agent_unavailable() is None


def test_passes_take_turns_and_pause_after_each_round() -> None:
    buffer = io.StringIO()
    out = Output(buffer)
    commands = [("one", _python("print('1')")), ("two", _python("print('2')"))]
    passes = EdgePasses(commands, fallback=None, children=[], out=out, pause=0.6)
    started = time.monotonic()
    while buffer.getvalue().count("one | 1") < 2 and time.monotonic() - started < 20:
        passes.tick()
        time.sleep(0.02)
    stop_children(passes.running(), sig=signal.SIGTERM, grace=5, signals=StopSignals(), out=out)

    lines = [line for line in buffer.getvalue().splitlines() if line[:3] in {"one", "two"}]
    assert lines[:3] == ["one | 1", "two | 2", "one | 1"]
    assert time.monotonic() - started >= 0.6
    assert passes.passes >= 2


def test_a_failing_first_pass_hands_over_to_the_synthetic_node() -> None:
    buffer = io.StringIO()
    out = Output(buffer)
    children: list[Child] = []
    fallback = ("edge", _python("import time; print('synthetic'); time.sleep(60)"))
    passes = EdgePasses(
        [("edge-cam-1", _python("raise SystemExit(4)"))],
        fallback=fallback,
        children=children,
        out=out,
    )
    deadline = time.monotonic() + 20
    while not children and time.monotonic() < deadline:
        passes.tick()
        time.sleep(0.02)
    while "edge | synthetic" not in buffer.getvalue() and time.monotonic() < deadline:
        time.sleep(0.02)
    stop_children(children, sig=signal.SIGTERM, grace=5, signals=StopSignals(), out=out)

    assert passes.replaced
    assert passes.running() == []
    assert "edge-cam-1 failed (exit 4" in buffer.getvalue()
    assert "falling back to the synthetic demo node" in buffer.getvalue()
    assert "edge | synthetic" in buffer.getvalue()


def test_guide_names_every_place_to_look() -> None:
    plan = DemoPlan(
        url="http://127.0.0.1:8000",
        options=UpOptions(),
        agency=DemoAgency(
            url="http://127.0.0.1:8101", port=8101, secrets=[], secrets_file="s", xml_cert=None
        ),
        node=DemoNode(node_id=uuid4(), key_path="k"),
    )
    text = "\n".join(guide_lines(plan))
    for expected in (
        "http://127.0.0.1:8000/schema",
        "http://127.0.0.1:8101/_inbox/",
        "http://127.0.0.1:8101/_inbox/items",
        "hub agencies list",
        "hub deliveries list",
        "synthetic node",
    ):
        assert expected in text
    off = "\n".join(guide_lines(DemoPlan(url="u", options=UpOptions(demo=False, agencies=False))))
    assert "off (--no-demo)" in off
    assert "off (--no-agencies)" in off


# --- `hub up` end to end -------------------------------------------------------------


def _kinds_received(client: httpx.Client, agency_url: str) -> set[str]:
    try:
        response = client.get(f"{agency_url}/_inbox/items")
    except httpx.HTTPError:
        return set()
    if response.status_code != 200:
        return set()
    return {str(item["kind"]) for item in msgspec.json.decode(response.content)}


class HubUp:
    """`hub up` as a subprocess in `cwd`, its output collected line by line."""

    def __init__(
        self, env: dict[str, str], cwd: Path, *, agency_port: int, console_port: int
    ) -> None:
        argv = [sys.executable, "-u", "-m", "hub.cli.main", "up"]
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [*argv, "--agency-port", str(agency_port), "--console-port", str(console_port)],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout as source:
            for raw in source:
                self.lines.append(raw.decode("utf-8", errors="replace"))

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def interrupt(self) -> int:
        """Ctrl-C, as a terminal would send it; the exit status."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGINT)
        code = self.process.wait(timeout=30)
        self.reader.join(timeout=5)
        return code


def _wait_for_quiet(hub: HubUp, settings: Settings, agency_url: str) -> set[str]:
    """Wait (at most 75 s) until the demo agency got all three kinds, the first round of edge
    passes is over and every delivery is settled: stopping then finds no job in flight."""
    marker = "edge-cam-2 | frames" if agent_unavailable() is None else ""
    kinds: set[str] = set()
    deadline = time.monotonic() + 75
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline and hub.process.poll() is None:
            kinds = _kinds_received(client, agency_url)
            if {"rest", "soap", "xml"} <= kinds and marker in hub.text:
                counts = asyncio.run(statuses(settings))
                if not any(counts.get(s) for s in ("pending", "in_flight", "retrying")):
                    return kinds
            time.sleep(0.5)
    return kinds


@pytest.mark.slow
@pytest.mark.db
@pytest.mark.timeout(120)
async def test_hub_up_delivers_edge_events_to_the_demo_agency(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    api_port, agency_port, console_port = free_port(), free_port(), free_port()
    env = {
        **settings_env(settings),
        "HUB_API_PORT": str(api_port),
        "HUB_POLICY_DIR": str(ROOT / "policies"),
        "HUB_LOG_LEVEL": "warning",
    }
    agency_url = f"http://127.0.0.1:{agency_port}"
    hub = HubUp(env, tmp_path, agency_port=agency_port, console_port=console_port)
    try:
        kinds = await asyncio.to_thread(_wait_for_quiet, hub, settings, agency_url)
    finally:
        code = await asyncio.to_thread(hub.interrupt)
    text = hub.text

    # police-north sees camera 1 (north), the other two camera 2 (central): all three got some.
    assert {"rest", "soap", "xml"} <= kinds, text[-4000:]
    assert code == 0, text[-4000:]
    assert f"{agency_url}/_inbox/items" in text
    assert "hub | stopped: api (exit 0), worker (exit 0), agency (exit 0), console (exit 0)" in (
        text
    ), text[-3000:]
    assert f"console       http://127.0.0.1:{console_port}" in text
    credentials = tmp_path / ".hub" / "demo-console.txt"
    assert credentials.stat().st_mode & 0o777 == 0o600
    assert "killing it" not in text
    names = {a.name for a in await list_agencies(services.db)}
    assert names == {s.name for s in DEMO_AGENCIES}
    officer = next(u for u in await list_users(services.identity) if u.username == "demo-officer")
    # The demo cameras' jurisdictions and enough clearance to see the demo's pictures.
    assert (sorted(officer.jurisdictions), officer.clearance) == (["central", "north"], 3)
    if agent_unavailable() is None:
        assert "edge-cam-1 | frames 4" in text, text[-4000:]
    assert (tmp_path / ".hub" / "demo-agency" / "webhook-secret").stat().st_mode & 0o777 == 0o600
