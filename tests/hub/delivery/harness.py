"""Test harness of deliveries: real demo agency receivers on loopback, agencies registered
against them, a real arq worker (in this process or as a `hub worker` subprocess), and
signed ingest through the real app."""

import asyncio
import base64
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
from arq.worker import Worker
from litestar.testing import AsyncTestClient

from adapters.xml import generate_signing_identity
from hub.delivery.agencies import add_agency
from hub.delivery.schemas import AgencyCreate, AgencyRead, Subscription
from hub.demo_agency.app import create_receiver_app
from hub.demo_agency.inbox import Inbox
from hub.demo_agency.options import ReceiverOptions
from hub.runtime import Services
from hub.settings import Settings
from hub.worker import worker_options
from tests.hub.ingest.builders import batch
from tests.support import EdgeNode, ThreadedServer, free_port, signed_headers

EVENTS = "/v1/edge/events"


class Receivers:
    """One demo agency server acting as REST, SOAP and XML receiver, stoppable and
    restartable on the same port (an agency going down and coming back)."""

    def __init__(self, keys_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        self.key_file, self.cert_file = generate_signing_identity(keys_dir, "hub-test")
        # Raw bodies too: envelope tests check the bytes on the wire, not a parsed view.
        self.inbox = Inbox(keep_raw=True)
        options = ReceiverOptions(
            webhook_secrets=[self.secret],
            xml_trusted_cert_pem=self.cert_file.read_bytes(),
            public_base_url=self.url,
        )
        self.app = create_receiver_app(["rest", "soap", "xml"], options, inbox=self.inbox)
        self.server: ThreadedServer | None = None

    def start(self) -> None:
        self.server = ThreadedServer(self.app, port=self.port).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def config(self, kind: str) -> dict[str, Any]:
        """The adapter configuration that reaches this receiver as `kind`."""
        if kind == "rest":
            return {
                "url": f"{self.url}/rest/events",
                "secrets": [self.secret],
                "timeout_seconds": 5,
            }
        if kind == "soap":
            return {
                "wsdl_url": f"{self.url}/soap/agency?wsdl",
                "operation": "SubmitDetection",
                "timeout_seconds": 5,
            }
        return {
            "url": f"{self.url}/xml/alerts",
            "signing_key_file": str(self.key_file),
            "signing_cert_file": str(self.cert_file),
            "timeout_seconds": 5,
        }

    def by_kind(self, kind: str) -> list[Any]:
        return [item for item in self.inbox.items() if item.kind == kind]


# The default bundle's recipients: police-north sees camera 1 (north) with plates in clear,
# transit-authority and city-analytics see cameras 2 and 3 (central), plates hashed / removed.
AGENCIES = {
    "police-north": ("rest", "investigation", ["north"], 3),
    "transit-authority": ("soap", "traffic", ["central"], 2),
    "city-analytics": ("xml", "statistics", ["central"], 1),
}


async def register(
    services: Services,
    receivers: Receivers,
    names: tuple[str, ...] = tuple(AGENCIES),
    *,
    kind: str | None = None,
    **overrides: Any,
) -> dict[str, AgencyRead]:
    """Register agencies of the default bundle against the receivers (through adapter `kind`
    instead of each one's usual, when given)."""
    found = {}
    for name in names:
        usual, purpose, jurisdictions, clearance = AGENCIES[name]
        chosen = kind or usual
        create = AgencyCreate(
            name=name,
            kind=chosen,
            config=receivers.config(chosen),
            subscription=Subscription(purpose=purpose),
            jurisdictions=jurisdictions,
            clearance=clearance,
            **overrides,
        )
        found[name] = await add_agency(
            services.db, services.delivery.adapters, create, actor="test"
        )
    return found


def quick(settings: Settings, **overrides: Any) -> Settings:
    """Settings that make retries and breakers fast enough for tests."""
    values: dict[str, Any] = {
        "delivery_backoff_base_seconds": 0.05,
        "delivery_backoff_max_seconds": 0.5,
        "delivery_reconcile_grace_seconds": 1,
        "breaker_failure_threshold": 100,
        "breaker_open_seconds": 0.5,
        **overrides,
    }
    return msgspec.structs.replace(settings, **values)


@asynccontextmanager
async def running_worker(settings: Settings, *, cron: bool = False) -> AsyncIterator[Worker]:
    """A real arq worker on this event loop (reconcile cron only when asked)."""
    options = worker_options(settings)
    if not cron:
        options.pop("cron_jobs")
    worker = Worker(**options, handle_signals=False)
    task = asyncio.create_task(worker.main())
    try:
        yield worker
    finally:
        # Stop the way SIGTERM does: take no new job and let running ones finish (a job that
        # just wrote its row may still be closing its arq records); only then cancel.
        worker.allow_pick_jobs = False
        deadline = asyncio.get_running_loop().time() + 15
        while any(not t.done() for t in worker.tasks.values()):
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.05)
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        await worker.close()


def settings_env(settings: Settings) -> dict[str, str]:
    """HUB_* variables reproducing `settings` for a subprocess."""
    env = {**os.environ}
    for name, value in msgspec.structs.asdict(settings).items():
        env[f"HUB_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


class WorkerProcess:
    """`hub worker` as a subprocess, for kill -9."""

    def __init__(self, settings: Settings) -> None:
        self.env = settings_env(settings)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli.main", "worker"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def ingest(client: AsyncTestClient, node: EdgeNode, events: list[dict[str, Any]]) -> None:
    """Post events as a signed batch; every one must be accepted."""
    body = batch(*events)
    response = await client.post(
        EVENTS, content=body, headers=signed_headers(node.signer, path=EVENTS, body=body)
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(events), response.text


async def wait_until(
    check: Callable[[], Awaitable[bool]], *, within: float = 30, what: str = "condition"
) -> None:
    """Poll `check` until it is true; fail with `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.05)


async def statuses(settings: Settings) -> dict[str, int]:
    """Deliveries counted by status."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch("SELECT status, count(*) AS n FROM delivery GROUP BY status")
    finally:
        await conn.close()
    return {r["status"]: r["n"] for r in rows}


async def all_settled(settings: Settings, total: int) -> bool:
    """True once `total` deliveries exist and none is still on its way."""
    counts = await statuses(settings)
    open_ = sum(counts.get(s, 0) for s in ("pending", "in_flight", "retrying"))
    return sum(counts.values()) == total and open_ == 0
