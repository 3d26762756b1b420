"""Builders for feed tests: agencies, agency tokens, events with media, signed uploads."""

import base64
import hashlib
import hmac
import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
from litestar.testing import AsyncTestClient
from PIL import Image, ImageDraw

from hub.identity.tokens import TokenEntry, append_token, new_token, token_hash
from tests.support import EdgeNode, signed_headers

# The agencies of policies/data.json, as the registry holds them.
AGENCIES = {
    "police-north": {"jurisdictions": ["north"], "clearance": 3, "purpose": "investigation"},
    "transit-authority": {"jurisdictions": ["central"], "clearance": 2, "purpose": "traffic"},
    "city-analytics": {"jurisdictions": ["central"], "clearance": 1, "purpose": "statistics"},
}
NORTH_CAMERA = "demo-cam-1"
CENTRAL_CAMERA = "demo-cam-2"


async def register_agencies(database_url: str) -> None:
    """Insert the three demo agencies straight into the registry."""
    conn = await asyncpg.connect(database_url)
    try:
        for name, attrs in AGENCIES.items():
            await conn.execute(
                """INSERT INTO agency (id, name, adapter_kind, endpoint, purpose, jurisdictions,
                                       clearance)
                   VALUES ($1, $2, 'rest', 'http://127.0.0.1:9/', $3, $4, $5)""",
                uuid.uuid4(),
                name,
                attrs["purpose"],
                attrs["jurisdictions"],
                attrs["clearance"],
            )
    finally:
        await conn.close()


def issue(path: Path, subject: str, **fields: Any) -> str:
    """Append a token for `subject` to a tokens file; returns the bearer token."""
    token = new_token()
    entry = {"sha256": token_hash(token), "subject": subject, **fields}
    append_token(path, msgspec.convert(entry, TokenEntry))
    return token


def agency_token(path: Path, agency: str, **overrides: Any) -> str:
    """A client token acting for one of `AGENCIES` (attributes overridable)."""
    attrs = AGENCIES.get(agency, {"jurisdictions": ["north"], "clearance": 3, "purpose": "traffic"})
    fields: dict[str, Any] = {
        "kind": "client",
        "roles": ["agency"],
        "agency": agency,
        "jurisdictions": attrs["jurisdictions"],
        "clearance": attrs["clearance"],
        "purpose": attrs["purpose"],
        **overrides,
    }
    return issue(path, f"{agency}-bot-{uuid.uuid4().hex[:4]}", **fields)


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for a token."""
    return {"Authorization": f"Bearer {token}"}


def event(camera_id: str = NORTH_CAMERA, **overrides: Any) -> dict[str, Any]:
    """A valid event with a person and a plate (the plate carries its text)."""
    base: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "camera_id": camera_id,
        "captured_at": (datetime.now(UTC) - timedelta(seconds=5)).isoformat(),
        "model_name": "centerface",
        "model_version": "1.0",
        "detections": [
            {
                "label": "person",
                "confidence": 0.91,
                "box": {"x": 0.1, "y": 0.1, "width": 0.3, "height": 0.4},
                "track_id": "t1",
            },
            {
                "label": "plate",
                "confidence": 0.77,
                "box": {"x": 0.5, "y": 0.5, "width": 0.3, "height": 0.3},
                "attributes": {"plate_text": "AB-123-CD"},
            },
        ],
    }
    base.update(overrides)
    return base


def striped_png() -> tuple[bytes, str]:
    """A PNG with sharp stripes (so a blur is measurable) and its SHA-256."""
    image = Image.new("RGB", (200, 100), "white")
    draw = ImageDraw.Draw(image)
    for x in range(0, 200, 4):
        draw.line([(x, 0), (x, 100)], fill="black", width=2)
    out = io.BytesIO()
    image.save(out, format="PNG")
    data = out.getvalue()
    return data, hashlib.sha256(data).hexdigest()


async def upload(client: AsyncTestClient, node: EdgeNode, *events: dict[str, Any]) -> None:
    """Post a signed batch through the real ingest route; every event must be accepted."""
    body = msgspec.json.encode({"events": list(events)})
    path = "/v1/edge/events"
    response = await client.post(
        path, content=body, headers=signed_headers(node.signer, path=path, body=body)
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(events), response.text


async def upload_media(client: AsyncTestClient, node: EdgeNode, data: bytes, sha: str) -> None:
    """Post a signed PNG snapshot."""
    path = f"/v1/edge/media/{sha}"
    headers = signed_headers(node.signer, path=path, body=data, content_type="image/png")
    response = await client.post(path, content=data, headers=headers)
    assert response.status_code == 200, response.text


async def upload_to(base_url: str, node: EdgeNode, *events: dict[str, Any]) -> None:
    """Post a signed batch to a hub served on loopback (signed for that URL)."""
    body = msgspec.json.encode({"events": list(events)})
    url = f"{base_url}/v1/edge/events"
    headers = {
        **node.signer.sign(method="POST", url=url, body=body),
        "Content-Type": "application/json",
    }
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(url, content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(events), response.text


def v1_cursor(master: bytes, seq: int, *, agency: str) -> str:
    """A cursor as hubs issued it before ADR 0042: a readable JSON body and a truncated MAC
    under the release master key's version 1 cursor key."""
    key = hmac.new(master, b"hub.feeds.cursor.v1", hashlib.sha256).digest()
    body = msgspec.json.encode([1, seq])
    mac = hmac.new(key, agency.encode() + b"\x00" + body, hashlib.sha256).digest()[:16]
    return ".".join(base64.urlsafe_b64encode(p).rstrip(b"=").decode() for p in (body, mac))
