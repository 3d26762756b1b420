"""A real hub on loopback (ThreadedServer, real PostgreSQL and Redis) for the console's
pages, with console users and seeded data: signed events, an agency and a dead letter."""

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pyotp
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from console.sessions import open_store
from edge.signing import RequestSigner
from hub.app import create_app
from hub.delivery.agencies import add_agency
from hub.delivery.schemas import AgencyCreate, Subscription
from hub.identity.oauth import UserCreate, add_user
from hub.media import ScanKit, scan_image
from hub.runtime import Services
from hub.settings import Settings
from tests.hub.ingest.builders import event
from tests.support import EdgeNode, ThreadedServer

CONSOLE = Path(__file__).resolve().parents[2] / "console"
PASSWORD = "correct horse battery staple"


class Hub(msgspec.Struct, kw_only=True):
    """The running hub and what was seeded into it."""

    url: str
    totp: dict[str, str] = {}
    events: list[str] = []
    media: list[str] = []
    dead: list[str] = []


@pytest.fixture
def console_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment a console process (or the in-process AppTest) reads its store from."""
    env = {
        "HUB_REDIS_URL": settings.redis_url,
        "HUB_REDIS_PREFIX": settings.redis_prefix,
        "HUB_SECRETS_DIR": settings.secrets_dir,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def hub_server(settings: Settings) -> Iterator[ThreadedServer]:
    """The real app on a free loopback port."""
    with ThreadedServer(create_app(settings)) as server:
        yield server


async def make_user(services: Services, name: str, roles: list[str]) -> str | None:
    """A console user; returns the TOTP secret when the account has one."""
    created = await add_user(
        services.identity,
        UserCreate(
            username=name,
            password=PASSWORD,
            roles=roles,  # type: ignore[arg-type]
            jurisdictions=["north", "central"],
            clearance=3,
        ),
        actor="test",
    )
    return None if created.totp_uri is None else pyotp.parse_uri(created.totp_uri).secret


def png() -> bytes:
    """A small PNG snapshot."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 80, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def post_signed(server: ThreadedServer, node: EdgeNode, path: str, body: bytes, ctype: str) -> Any:
    """A request signed by the edge node for the server's own URL."""
    signer: RequestSigner = node.signer
    url = f"{server.url}{path}"
    headers = {**signer.sign(method="POST", url=url, body=body), "Content-Type": ctype}
    response = httpx.post(url, content=body, headers=headers, timeout=10)
    assert response.status_code in (200, 201), response.text
    return response.json()


@pytest.fixture
async def seeded(
    services: Services, hub_server: ThreadedServer, edge_node: EdgeNode, console_env: dict[str, str]
) -> Hub:
    """Users of every role, one agency, two events with a snapshot, one dead letter."""
    import hashlib

    hub = Hub(url=hub_server.url)
    await make_user(services, "olga", ["compliance_officer"])
    await make_user(services, "otto", ["operator"])
    hub.totp["ada"] = await make_user(services, "ada", ["admin"]) or ""
    await add_agency(
        services.db,
        services.delivery.adapters,
        AgencyCreate(
            name="police-north",
            kind="rest",
            config={"url": "http://127.0.0.1:9/none", "secrets": ["whsec_" + "A" * 32]},
            subscription=Subscription(purpose="investigation"),
            jurisdictions=["north"],
            clearance=3,
        ),
        actor="test",
    )
    image = png()
    sha = hashlib.sha256(image).hexdigest()
    post_signed(hub_server, edge_node, f"/v1/edge/media/{sha}", image, "image/png")
    # The hub's scan (a worker job in production): unscanned images are withheld from the
    # console, whose release blurs faces and plates.
    await scan_image(services.db, ScanKit(media_root=Path(services.settings.media_dir)), sha256=sha)
    events = [
        event(camera_id="demo-cam-1", media=[{"sha256": sha, "content_type": "image/png"}]),
        event(camera_id="demo-cam-1"),
    ]
    post_signed(
        hub_server,
        edge_node,
        "/v1/edge/events",
        msgspec.json.encode({"events": events}),
        "application/json",
    )
    hub.events = [e["event_id"] for e in events]
    hub.media = [sha]
    rows = await services.db.pool.fetch(
        "UPDATE delivery SET status = 'dead', dead_at = now(), last_error = 'HTTP 410' RETURNING id"
    )
    hub.dead = [str(r["id"]) for r in rows]
    return hub


def console_app(hub: Hub, page: str | None = None) -> AppTest:
    """The console's AppTest pointed at the running hub (not yet run)."""
    script = CONSOLE / ("app.py" if page is None else f"views/{page}.py")
    app = AppTest.from_file(str(script), default_timeout=30)
    app.session_state["hub_url"] = hub.url
    return app


def sign_in(hub: Hub, username: str, totp: str | None = None) -> str:
    """Sign in as the console's /signin route does; the session cookie's value."""
    code = pyotp.TOTP(totp).now() if totp else None
    return open_store().sign_in(hub.url, username, PASSWORD, code)


def log_in(hub: Hub, username: str, totp: str | None = None) -> AppTest:
    """The console as a browser holding this user's session cookie sees it (first page)."""
    app = console_app(hub)
    app.session_state["hub_cookie"] = sign_in(hub, username, totp)
    app.run()
    assert not app.exception, app.exception
    return app


def texts(app: AppTest) -> str:
    """Everything the page wrote (titles, markdown, alerts, captions, metrics)."""
    parts: list[str] = []
    for kind in (
        "title",
        "header",
        "subheader",
        "markdown",
        "caption",
        "success",
        "error",
        "warning",
        "info",
    ):
        parts += [str(element.value) for element in getattr(app, kind)]
    parts += [f"{m.label}={m.value}" for m in app.metric]
    return "\n".join(parts)
