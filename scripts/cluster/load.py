"""The cluster rig's edge: post signed batches of detection events through HAProxy at a steady
rate, re-sending each batch (new signature, same event ids) until the hub answers 200, the way
the edge agent drains its spool. Run in the edge namespace; writes a JSON report: accepted
event ids, every attempt's (time, outcome), batches re-sent.

    ip netns exec hubc-edge .venv/bin/python scripts/cluster/load.py \
        --base http://10.231.0.30:8000 --node .hub/cluster/edge --rate 40 --duration 20 --out r.json
"""

import argparse
import asyncio
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import msgspec

from edge.signing import RequestSigner, load_private_key
from hub.contracts.detection_v1 import (
    BatchResult,
    BoundingBox,
    Detection,
    DetectionEvent,
    EventBatch,
)

PATH = "/v1/edge/events"
BATCH = 10
GIVE_UP_SECONDS = 120.0


@dataclass
class Report:
    """What the load saw; `accepted` holds every event id the hub answered `accepted` for."""

    accepted: list[str] = field(default_factory=list)
    attempts: list[tuple[float, str]] = field(default_factory=list)
    batches: int = 0
    resent: int = 0
    abandoned: int = 0


def make_event(rng: random.Random, camera: str) -> DetectionEvent:
    """One plate detection captured a second ago."""
    plate = f"{rng.choice('ABCDEFGH')}{rng.choice('KLMNPRST')}-{rng.randint(100, 999)}"
    return DetectionEvent(
        event_id=uuid.uuid4(),
        camera_id=camera,
        captured_at=datetime.now(UTC) - timedelta(seconds=1),
        model_name="demo-synthetic",  # a model the default ingest policy knows
        model_version="1",
        detections=[
            Detection(
                label="plate",
                confidence=0.9,
                box=BoundingBox(x=0.2, y=0.3, width=0.1, height=0.05),
                attributes={"plate_text": plate},
            )
        ],
    )


async def send_batch(
    http: httpx.AsyncClient,
    signer: RequestSigner,
    base: str,
    body: bytes,
    report: Report,
    t0: float,
) -> BatchResult | None:
    """Post one batch until a 200 (None after GIVE_UP_SECONDS); every try is recorded."""
    started, tries = time.monotonic(), 0
    while time.monotonic() - started < GIVE_UP_SECONDS:
        tries += 1
        headers = {
            **signer.sign(method="POST", url=f"{base}{PATH}", body=body),
            "Content-Type": "application/json",
        }
        try:
            response = await http.post(PATH, content=body, headers=headers)
            outcome = str(response.status_code)
        except httpx.HTTPError as exc:
            outcome = type(exc).__name__
        report.attempts.append((round(time.monotonic() - t0, 3), outcome))
        if outcome == "200":
            report.resent += tries > 1
            return msgspec.json.decode(response.content, type=BatchResult)
        await asyncio.sleep(min(0.2 * tries, 1.0))
    report.abandoned += 1
    return None


async def sender(
    http: httpx.AsyncClient,
    signer: RequestSigner,
    args: argparse.Namespace,
    report: Report,
    *,
    t0: float,
    seed: int,
) -> None:
    """Offer BATCH events every BATCH * senders / rate seconds until the duration is over."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    interval, n = BATCH * args.senders / args.rate, 0
    while time.monotonic() - t0 < args.duration:
        batch = EventBatch(events=[make_event(rng, args.camera) for _ in range(BATCH)])
        report.batches += 1
        result = await send_batch(http, signer, args.base, msgspec.json.encode(batch), report, t0)
        if result is not None:
            report.accepted += [str(r.event_id) for r in result.results if r.status == "accepted"]
        n += 1
        delay = t0 + n * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


async def main() -> None:
    """Run the load and write the report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", required=True)
    parser.add_argument("--node", type=Path, required=True, help="folder with node.json, node.key")
    parser.add_argument("--rate", type=float, default=40.0, help="events per second")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    node = json.loads((args.node / "node.json").read_text(encoding="utf-8"))
    args.camera = node["camera"]
    signer = RequestSigner(
        key_id=node["node_id"], private_key=load_private_key((args.node / "node.key").read_bytes())
    )
    report, t0 = Report(), time.monotonic()
    async with httpx.AsyncClient(base_url=args.base, timeout=10) as http:
        await asyncio.gather(
            *(sender(http, signer, args, report, t0=t0, seed=i) for i in range(args.senders))
        )
    args.out.write_text(json.dumps(report.__dict__), encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main())
