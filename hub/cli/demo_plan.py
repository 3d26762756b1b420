"""What `hub up` runs beside the API and the worker, settled before anything starts: the demo
agency (its three agencies registered) and the demo edge node (the real agent, or the
synthetic node when asked or when the agent cannot run here), and the "where to look" text.
"""

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import msgspec

from hub.cli.demo_agencies import (
    DEFAULT_PORT,
    DemoAgency,
    agency_command,
    ensure_demo_agencies,
    load_trust,
)
from hub.cli.demo_console import DemoConsole, console_command, ensure_demo_officer
from hub.cli.demo_edge import (
    ROUND_PAUSE,
    EdgeDemo,
    agent_unavailable,
    edge_commands,
    prepare_edge_demo,
    shown_path,
    status_command,
)
from hub.cli.demo_node import DemoNode, ensure_demo_node
from hub.kit.errors import HubError
from hub.runtime import Services, build_services, start_services, stop_services
from hub.settings import Settings

Say = Callable[[str], None]
Command = tuple[str, list[str]]


@dataclass(frozen=True, slots=True)
class UpOptions:
    """The choices `hub up` takes from its command line."""

    demo: bool = True  # run a demo edge node
    synthetic: bool = False  # ... the synthetic one (edge/demo.py) rather than hub-edge
    agencies: bool = True  # run the demo agency and register its three agencies
    agency_port: int = DEFAULT_PORT
    console: bool = True  # run the compliance console with a demo officer account
    console_port: int = 8501


@dataclass(frozen=True, slots=True)
class DemoPlan:
    """The demo parts to start; a part that could not be prepared is None (and was said)."""

    url: str  # the API
    options: UpOptions
    agency: DemoAgency | None = None
    node: DemoNode | None = None
    edge: EdgeDemo | None = None  # None while `node` is set: the synthetic node runs
    console: DemoConsole | None = None

    def console_command(self) -> Command | None:
        """The console's process, if it runs."""
        if self.console is None:
            return None
        return console_command(self.console, api_url=self.url, port=self.options.console_port)

    def agency_command(self) -> Command | None:
        """The demo agency's process, if it runs."""
        return None if self.agency is None else ("agency", agency_command(self.agency))

    def edge_commands(self) -> list[Command]:
        """The real agent's passes, one per camera (empty when it does not run)."""
        return [] if self.edge is None else edge_commands(self.edge)

    def synthetic_command(self) -> Command | None:
        """The synthetic node's process: what runs without the real agent, or after it failed."""
        if self.node is None:
            return None
        args = ["--hub-url", self.url, "--node-id", str(self.node.node_id)]
        argv = [sys.executable, "-u", "-m", "edge.demo", *args, "--key", self.node.key_path]
        return ("edge", argv)


def prepare_plan(
    settings: Settings, *, url: str, options: UpOptions, state_dir: Path, say: Say
) -> DemoPlan:
    """Register what the demo needs (node, agencies) and prepare the edge agent's input."""
    plan = DemoPlan(url=url, options=options)
    if options.demo or options.agencies:
        plan = _register(settings, plan, state_dir=state_dir, say=say)
    if plan.node is None or options.synthetic:
        return plan
    reason = agent_unavailable()
    if reason is None:
        try:
            return replace(plan, edge=prepare_edge_demo(state_dir, hub_url=url, node=plan.node))
        except (OSError, ValueError) as exc:
            reason = f"its input could not be prepared: {exc}"
    say(f"the real edge agent cannot run: {reason}; running the synthetic demo node instead")
    return plan


def _register(settings: Settings, plan: DemoPlan, *, state_dir: Path, say: Say) -> DemoPlan:
    """The demo node and agencies, registered when missing (one short database session)."""

    async def work() -> DemoPlan:
        small = msgspec.structs.replace(settings, db_pool_min=1, db_pool_max=2)
        services = build_services(small)
        await start_services(services)
        try:
            node = await _node(services, state_dir, say) if plan.options.demo else None
            agency = await _agency(services, plan.options, state_dir, say)
            console = await _console(services, plan.options, state_dir, say)
            return replace(plan, node=node, agency=agency, console=console)
        finally:
            await stop_services(services)

    try:
        return asyncio.run(work())
    except (HubError, OSError) as exc:
        say(f"demo parts not started: {exc}")
        return plan


async def _node(services: Services, state_dir: Path, say: Say) -> DemoNode | None:
    try:
        return await ensure_demo_node(services.db, state_dir=state_dir, say=say)
    except (HubError, OSError, ValueError) as exc:
        say(f"demo edge node not started: {exc}")
        return None


async def _agency(
    services: Services, options: UpOptions, state_dir: Path, say: Say
) -> DemoAgency | None:
    if not options.agencies:
        return None
    try:
        trust = load_trust(state_dir)
        return await ensure_demo_agencies(
            services.db,
            services.delivery.adapters,
            port=options.agency_port,
            trust=trust,
            say=say,
        )
    except (HubError, OSError, ValueError) as exc:
        say(f"demo agency not started: {exc}")
        return None


async def _console(
    services: Services, options: UpOptions, state_dir: Path, say: Say
) -> DemoConsole | None:
    if not options.console:
        return None
    url = f"http://127.0.0.1:{options.console_port}"
    try:
        return await ensure_demo_officer(services, state_dir=state_dir, url=url, say=say)
    except (HubError, OSError, ValueError) as exc:
        say(f"console not started: {exc}")
        return None


def guide_lines(plan: DemoPlan) -> list[str]:
    """The short "where to look" block printed once the hub is up."""
    url = plan.url
    lines = [
        "the hub is up; where to look:",
        f"  API           {url}",
        f"  OpenAPI       {url}/schema   (JSON: {url}/schema/openapi.json)",
        f"  readiness     {url}/readyz   liveness {url}/healthz",
    ]
    if plan.console is not None:
        lines.append(
            f"  console       {plan.console.url}   (user {plan.console.username}, "
            f"password in {plan.console.credentials_file})"
        )
    lines += _agency_lines(plan)
    lines += _edge_lines(plan)
    lines += [
        "  audit chain   hub audit verify",
        f"  logs          here, each line behind its source: {_sources(plan)}",
        "  stop          Ctrl-C stops every part",
    ]
    return lines


def _sources(plan: DemoPlan) -> str:
    """The log prefixes to expect, e.g. `api | worker | agency | edge-cam-1 | edge-cam-2 |`."""
    names = ["api", "worker"] + (["agency"] if plan.agency is not None else [])
    if plan.edge is not None:
        names += [name for name, _ in plan.edge_commands()]
    elif plan.node is not None:
        names.append("edge")
    return " ".join(f"{name} |" for name in names)


def _agency_lines(plan: DemoPlan) -> list[str]:
    if plan.agency is None:
        state = "off (--no-agencies)" if not plan.options.agencies else "not running (see above)"
        return [f"  demo agency   {state}", "  agencies      hub agencies list"]
    inbox = f"{plan.agency.url}/_inbox"
    return [
        f"  demo agency   {inbox}/ (counts)   {inbox}/items (messages received)",
        "  agencies      hub agencies list   (police-north rest, transit-authority soap, "
        "city-analytics xml)",
        "  deliveries    hub deliveries list --status delivered   (dead letters: "
        "hub deliveries list)",
    ]


def _edge_lines(plan: DemoPlan) -> list[str]:
    node = plan.node
    if node is None:
        state = "off (--no-demo)" if not plan.options.demo else "not running (see above)"
        return [f"  demo edge     {state}", "  edge nodes    hub nodes list"]
    if plan.edge is None:
        return [
            f"  demo edge     synthetic node {node.node_id}: a batch every 2 s (python -m "
            "edge.demo)",
            "  edge nodes    hub nodes list",
        ]
    cameras = ", ".join(camera for camera, _ in plan.edge.configs)
    return [
        f"  demo edge     hub-edge on {cameras}: a pass over {shown_path(plan.edge.frames_dir)} "
        f"per camera, then a {ROUND_PAUSE:g} s pause",
        f"  edge status   {status_command(plan.edge)}   nodes: hub nodes list",
    ]
