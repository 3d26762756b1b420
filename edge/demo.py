"""A stand-in camera box: posts synthetic `hub.detection.v1` batches to a hub.

Until the ONNX edge agent exists this is what `hub up` runs as its demo edge node:
every interval it signs and posts a batch of random person/vehicle/plate detections and,
every fifth batch, first uploads a tiny JPEG snapshot the batch refers to. It backs off on
connection errors and honours ``Retry-After``; it keeps no spool, so a batch given up on is
lost. Like all of ``edge/`` it imports only ``hub.contracts`` from the hub.

    python -m edge.demo --hub-url http://127.0.0.1:8000 --node-id ID --key FILE
"""

import argparse
import asyncio
import hashlib
import logging
import random
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgspec

from edge.backoff import RETRY_STATUSES, backoff_delay, retry_after
from edge.signing import RequestSigner, load_private_key
from edge.synthetic import build_batch, snapshot_jpeg
from hub.contracts.detection_v1 import (
    BatchResult,
    EventBatch,
    MediaRef,
)

log = logging.getLogger("edge.demo")

SNAPSHOT_EVERY = 5  # batches

BatchHook = Callable[[EventBatch, BatchResult], None]


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What to post where, how often and as whom."""

    hub_url: str
    node_id: str
    key_path: Path
    interval: float = 2.0
    batch: int = 5
    cameras: int = 3
    count: int | None = None


@dataclass(slots=True)
class DemoTotals:
    """Running totals over every batch sent."""

    batches: int = 0
    failed: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    snapshots: int = 0


@dataclass(slots=True)
class Sender:
    """Signs and posts requests, retrying what may succeed later."""

    client: httpx.AsyncClient
    signer: RequestSigner
    stop: asyncio.Event
    # Synthetic data and retry jitter only; nothing here needs unpredictable numbers.
    rng: random.Random = field(default_factory=random.Random)


def parse_args(argv: list[str] | None = None) -> DemoOptions:
    """Read the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m edge.demo", description="Post synthetic detection batches to a hub."
    )
    parser.add_argument("--hub-url", required=True, help="Base URL of the hub API.")
    parser.add_argument("--node-id", required=True, help="Registered node id (the signing keyid).")
    parser.add_argument("--key", required=True, type=Path, help="Ed25519 private key (PEM).")
    parser.add_argument("--interval", type=float, default=2.0, help="Seconds between batches.")
    parser.add_argument("--batch", type=int, default=5, help="Events per batch (1-500).")
    parser.add_argument("--cameras", type=int, default=3, help="Number of synthetic cameras.")
    parser.add_argument("--count", type=int, help="Send this many batches, then exit.")
    ns = parser.parse_args(argv)
    if not 1 <= ns.batch <= 500 or ns.cameras < 1 or ns.interval < 0:
        parser.error("need 1 <= --batch <= 500, --cameras >= 1 and --interval >= 0")
    return DemoOptions(
        hub_url=ns.hub_url.rstrip("/"),
        node_id=ns.node_id,
        key_path=ns.key,
        interval=ns.interval,
        batch=ns.batch,
        cameras=ns.cameras,
        count=ns.count,
    )


def main(argv: list[str] | None = None) -> int:
    """Run until SIGINT/SIGTERM (or `--count` batches); exit status 1 if a batch failed."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    options = parse_args(argv)
    try:
        signer = load_signer(options)
    except (OSError, ValueError) as exc:
        log.error("cannot load the node key %s: %s", options.key_path, exc)
        return 2
    totals = asyncio.run(_run_until_signalled(options, signer))
    return 1 if options.count is not None and totals.failed else 0


def load_signer(options: DemoOptions) -> RequestSigner:
    """A signer for the node's key file; OSError or ValueError when it cannot be read."""
    key = load_private_key(options.key_path.read_bytes())
    return RequestSigner(key_id=options.node_id, private_key=key)


async def _run_until_signalled(options: DemoOptions, signer: RequestSigner) -> DemoTotals:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return await run_demo(options, signer=signer, stop=stop)


async def run_demo(
    options: DemoOptions,
    *,
    signer: RequestSigner,
    stop: asyncio.Event,
    on_batch: BatchHook | None = None,
) -> DemoTotals:
    """Post batches every `interval` until `stop` is set or `count` batches are sent."""
    totals = DemoTotals()
    log.info("demo edge node %s posting to %s", options.node_id, options.hub_url)
    async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
        sender = Sender(client=client, signer=signer, stop=stop)
        while not stop.is_set() and (options.count is None or totals.batches < options.count):
            await _send_one(sender, options, totals, on_batch)
            done = options.count is not None and totals.batches >= options.count
            if done or await _sleep(stop, options.interval):
                break
    log.info(
        "demo edge node stopped after %d batches (%d accepted, %d failed)",
        totals.batches,
        totals.accepted,
        totals.failed,
    )
    return totals


async def _send_one(
    sender: Sender, options: DemoOptions, totals: DemoTotals, on_batch: BatchHook | None
) -> None:
    """Build, (snapshot,) post and log one batch; update the totals."""
    number = totals.batches + 1
    totals.batches = number
    media = None
    if (number - 1) % SNAPSHOT_EVERY == 0:
        media = await _upload_snapshot(sender, options.hub_url, counter=number)
        totals.snapshots += media is not None
    now = datetime.now(UTC)
    batch = build_batch(
        sender.rng, cameras=options.cameras, size=options.batch, now=now, media=media
    )
    result = await _post_batch(sender, options.hub_url, batch)
    if result is None:
        totals.failed += 1
        return
    totals.accepted += result.accepted
    totals.duplicate += result.duplicate
    totals.rejected += result.rejected
    snapshot = f", snapshot {media.sha256[:12]}" if media else ""
    log.info(
        "batch %d: accepted %d, duplicate %d, rejected %d%s",
        number,
        result.accepted,
        result.duplicate,
        result.rejected,
        snapshot,
    )
    if on_batch is not None:
        on_batch(batch, result)


async def _upload_snapshot(sender: Sender, hub_url: str, *, counter: int) -> MediaRef | None:
    """Upload a fresh snapshot; its reference, or None when the hub would not take it."""
    data = snapshot_jpeg(counter)
    sha256 = hashlib.sha256(data).hexdigest()
    response = await post_signed(sender, f"{hub_url}/v1/edge/media/{sha256}", data, "image/jpeg")
    if response is None or not _succeeded(response, what="snapshot"):
        return None
    return MediaRef(sha256=sha256, kind="snapshot", content_type="image/jpeg")


async def _post_batch(sender: Sender, hub_url: str, batch: EventBatch) -> BatchResult | None:
    """Post a batch; the hub's per-event answer, or None when it failed as a whole."""
    body = msgspec.json.encode(batch)
    response = await post_signed(sender, f"{hub_url}/v1/edge/events", body, "application/json")
    if response is None or not _succeeded(response, what="batch"):
        return None
    return msgspec.json.decode(response.content, type=BatchResult)


def _succeeded(response: httpx.Response, *, what: str) -> bool:
    """True for 2xx; otherwise log the problem detail the hub sent."""
    if response.is_success:
        return True
    try:
        detail = str(response.json().get("detail", response.text))
    except ValueError:
        detail = response.text[:200]
    log.warning("%s refused: %d %s", what, response.status_code, detail)
    return False


async def post_signed(
    sender: Sender, url: str, body: bytes, content_type: str
) -> httpx.Response | None:
    """POST signed; retry connection errors and busy answers; None if stopped meanwhile."""
    attempt = 0
    while not sender.stop.is_set():
        request = sender.client.build_request(
            "POST", url, content=body, headers={"Content-Type": content_type}
        )
        # Sign exactly the URL httpx will send, with a fresh nonce and time per attempt.
        request.headers.update(sender.signer.sign(method="POST", url=str(request.url), body=body))
        try:
            response = await sender.client.send(request)
        except httpx.TransportError as exc:
            delay = backoff_delay(attempt, sender.rng)
            log.warning("hub unreachable (%s); retrying in %.1f s", type(exc).__name__, delay)
        else:
            if response.status_code not in RETRY_STATUSES:
                return response
            asked = retry_after(response, now=datetime.now(UTC))
            delay = backoff_delay(attempt, sender.rng) if asked is None else asked
            delay += sender.rng.uniform(0.0, 0.5)
            log.warning("hub busy (%d); retrying in %.1f s", response.status_code, delay)
        attempt += 1
        if await _sleep(sender.stop, delay):
            break
    return None


async def _sleep(stop: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds` or until `stop` is set; True when stopped."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
