"""The demo edge node against a real hub (uvicorn on loopback, PostgreSQL, Redis)."""

import asyncio
import hashlib
import random
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import asyncpg
import httpx
import msgspec
import pytest
import uvicorn

from edge.demo import (
    Sender,
    backoff_delay,
    load_signer,
    parse_args,
    post_signed,
    retry_after,
    run_demo,
)
from edge.signing import RequestSigner, generate_key, private_key_pem, public_key_pem
from edge.synthetic import build_batch, snapshot_jpeg
from hub.app import create_app
from hub.contracts.detection_v1 import BatchResult, EventBatch
from hub.identity import NodeCreate, add_node
from hub.identity.signatures import verify_request
from hub.runtime import Services
from hub.settings import Settings
from tests.support import TEST_CAMERAS

pytestmark = [pytest.mark.db, pytest.mark.redis]


# --- a real hub on a loopback port -------------------------------------------------------


@pytest.fixture
def hub_url(settings: Settings, services: Services) -> Iterator[str]:
    """The app served by uvicorn in a thread (its own event loop), on a free loopback port.

    Depends on `services` so it starts after them: Piccolo binds tables to the engine that
    started last, and that must be the server's.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings), log_level="warning", lifespan="on", ws="none", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture
async def demo_node(services: Services, tmp_path: Path) -> tuple[UUID, Path]:
    """A registered node and its private key written to a file, as `hub up` leaves them."""
    key = generate_key()
    node = await add_node(
        services.db,
        NodeCreate(name="demo-test", public_key=public_key_pem(key), cameras=list(TEST_CAMERAS)),
        actor="test",
    )
    key_file = tmp_path / "node.key"
    key_file.write_text(private_key_pem(key))
    return node.id, key_file


async def test_demo_posts_batches_the_hub_stores(
    hub_url: str, demo_node: tuple[UUID, Path], settings: Settings
) -> None:
    node_id, key_file = demo_node
    argv = ["--hub-url", hub_url, "--node-id", str(node_id), "--key", str(key_file)]
    options = parse_args([*argv, "--count", "3", "--interval", "0.05", "--batch", "4"])
    sent: list[tuple[EventBatch, BatchResult]] = []

    totals = await run_demo(
        options,
        signer=load_signer(options),
        stop=asyncio.Event(),
        on_batch=lambda batch, result: sent.append((batch, result)),
    )

    assert (totals.batches, totals.failed, totals.snapshots) == (3, 0, 1)
    accepted = {r.event_id for _, result in sent for r in result.results if r.status == "accepted"}
    # Synthetic scores are random: policy may drop a detection below its class's minimum.
    assert len(accepted) == totals.accepted
    assert totals.accepted + totals.rejected == 12
    rejected = [r for _, result in sent for r in result.results if r.status == "rejected"]
    assert all(r.reason == "dropped by policy" for r in rejected)
    snapshot = sent[0][0].events[0].media[0].sha256
    conn = await asyncpg.connect(settings.database_url)
    try:
        stored = await conn.fetch(
            "SELECT event_id, media_sha256 FROM detection_event WHERE node_id = $1", node_id
        )
        media = await conn.fetchrow(
            "SELECT size_bytes, content_type, node_id FROM media_object WHERE sha256 = $1",
            snapshot,
        )
    finally:
        await conn.close()
    assert {row["event_id"] for row in stored} == accepted
    assert any(row["media_sha256"] == [snapshot] for row in stored)
    assert media is not None
    assert (media["content_type"], media["node_id"]) == ("image/jpeg", node_id)


async def test_demo_with_an_unregistered_key_fails_every_batch(
    hub_url: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "stranger.key"
    key_file.write_text(private_key_pem(generate_key()))
    argv = ["--hub-url", hub_url, "--node-id", str(UUID(int=7)), "--key", str(key_file)]
    options = parse_args([*argv, "--count", "2", "--interval", "0"])
    totals = await run_demo(options, signer=load_signer(options), stop=asyncio.Event())
    assert (totals.batches, totals.failed, totals.accepted) == (2, 2, 0)


# --- demo pieces without a hub -----------------------------------------------------------


def test_synthetic_batches_pass_the_contract() -> None:
    rng = random.Random(1)
    now = datetime.now(UTC)
    for _ in range(50):
        batch = build_batch(rng, cameras=3, size=5, now=now, media=None)
        # Struct constructors do not check constraints; decoding does.
        decoded = msgspec.json.decode(msgspec.json.encode(batch), type=EventBatch)
        assert len(decoded.events) == 5
        assert all(now - timedelta(seconds=1) <= e.captured_at <= now for e in decoded.events)
    plates = [
        d
        for _ in range(20)
        for e in build_batch(rng, cameras=1, size=5, now=now, media=None).events
        for d in e.detections
        if d.label == "plate"
    ]
    assert plates
    assert all(isinstance(d.attributes["plate_text"], str) for d in plates)


def test_snapshots_are_jpegs_with_distinct_hashes() -> None:
    first, second = snapshot_jpeg(1), snapshot_jpeg(2)
    assert first.startswith(b"\xff\xd8\xff")
    assert second.endswith(b"\xff\xd9")
    assert hashlib.sha256(first).digest() != hashlib.sha256(second).digest()


def test_retry_after_reads_seconds_and_dates() -> None:
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)

    def answer(value: str | None) -> httpx.Response:
        return httpx.Response(503, headers={} if value is None else {"Retry-After": value})

    assert retry_after(answer("7"), now=now) == 7.0
    assert retry_after(answer("Wed, 01 Jan 2025 12:00:30 GMT"), now=now) == 30.0
    assert retry_after(answer("99999"), now=now) == 300.0
    assert retry_after(answer(None), now=now) is None
    assert retry_after(answer("soon"), now=now) is None


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    rng = random.Random(3)
    first = [backoff_delay(0, rng) for _ in range(100)]
    assert all(0.25 <= d <= 0.5 for d in first)
    assert len(set(first)) > 1
    assert all(15.0 <= backoff_delay(40, rng) <= 30.0 for _ in range(100))


async def test_busy_hub_is_retried_with_a_fresh_signature() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            raise httpx.ConnectError("refused", request=request)
        if len(seen) == 2:
            return httpx.Response(429, headers={"Retry-After": "0"})
        return httpx.Response(200, json={"ok": True})

    key = generate_key()
    signer = RequestSigner(key_id="k", private_key=key)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        sender = Sender(client=client, signer=signer, stop=asyncio.Event(), rng=random.Random(0))
        response = await post_signed(sender, "http://hub.test:80/v1/edge/events", b"{}", "a/b")
    assert response is not None
    assert response.status_code == 200
    # Each attempt is signed anew, over exactly the URL that was requested.
    nonces = {
        verify_request(
            method=r.method,
            url=str(r.url),
            headers=r.headers,
            body=r.content,
            public_key=key.public_key(),
            now=datetime.now(UTC),
        ).nonce
        for r in seen
    }
    assert len(nonces) == 3


async def test_stop_interrupts_retrying() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": "60"})

    stop = asyncio.Event()
    signer = RequestSigner(key_id="k", private_key=generate_key())
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        sender = Sender(client=client, signer=signer, stop=stop)
        task = asyncio.create_task(post_signed(sender, "http://hub.test/x", b"{}", "a/b"))
        await asyncio.sleep(0.1)
        stop.set()
        assert await asyncio.wait_for(task, 2) is None
