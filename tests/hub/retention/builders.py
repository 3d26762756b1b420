"""Builders of retention tests: events and media stored directly at chosen capture times."""

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from hub.ingest.partitions import ensure_partitions
from hub.policy.bundle import load_bundle_dir
from hub.policy.engines import load_engine
from hub.retention.sweep import SweepDeps
from hub.runtime import Services
from tests.support import repo_root

NOW = datetime.now(UTC)


def days_ago(days: float) -> datetime:
    """A capture time `days` before now."""
    return NOW - timedelta(days=days)


def activate_default_policy(services: Services) -> None:
    """Load the repository's bundle into the services' policy (tests skip the watcher)."""
    services.policy.activate(load_engine(load_bundle_dir(repo_root() / "policies")))


def sweep_deps(services: Services, **overrides: Any) -> SweepDeps:
    """Sweep collaborators on the test services, small batches, no pause."""
    values: dict[str, Any] = {
        "db": services.db,
        "policy": services.policy,
        "media_root": Path(services.settings.media_dir),
        "batch_size": 2,
        "batch_pause_ms": 0,
        "actor": "test",
    }
    values.update(overrides)
    return SweepDeps(**values)


async def add_event(
    conn: asyncpg.Connection,
    *,
    captured_at: datetime,
    camera_id: str = "demo-cam-2",
    media: tuple[str, ...] = (),
    track_id: str | None = None,
    plate: str | None = None,
) -> uuid.UUID:
    """Insert one event row as ingest would; returns its event id."""
    event_id = uuid.uuid4()
    detection: dict[str, Any] = {
        "label": "vehicle",
        "confidence": 0.9,
        "box": {"x": 0.1, "y": 0.1, "width": 0.2, "height": 0.2},
    }
    if track_id:
        detection["track_id"] = track_id
    if plate:
        detection["attributes"] = {"plate_text": plate}
    payload = {
        "event_id": str(event_id),
        "camera_id": camera_id,
        "captured_at": captured_at.isoformat(),
        "model_name": "demo-synthetic",
        "model_version": "0.1",
        "detections": [detection],
        "media": [{"sha256": m, "kind": "snapshot"} for m in media],
    }
    await conn.execute(
        """INSERT INTO detection_event (node_id, event_id, captured_at, camera_id, classes,
               max_confidence, media_sha256, content_sha256, payload)
           VALUES ($1, $2, $3, $4, '{vehicle}', 0.9, $5, $6, $7::jsonb)""",
        uuid.uuid4(),
        event_id,
        captured_at,
        camera_id,
        list(media),
        hashlib.sha256(event_id.bytes).digest(),
        msgspec.json.encode(payload).decode(),
    )
    return event_id


async def add_media(
    conn: asyncpg.Connection, root: Path, *, created_at: datetime, content: bytes
) -> str:
    """A stored media file and its row; returns its sha256."""
    sha = hashlib.sha256(content).hexdigest()
    relative = f"{sha[:2]}/{sha[2:4]}/{sha}"
    (root / relative).parent.mkdir(parents=True, exist_ok=True)
    (root / relative).write_bytes(content)
    await conn.execute(
        """INSERT INTO media_object (sha256, size_bytes, content_type, storage_path, created_at)
           VALUES ($1, $2, 'image/jpeg', $3, $4)""",
        sha,
        len(content),
        relative,
        created_at,
    )
    return sha


async def partition_events(conn: asyncpg.Connection) -> None:
    """Move rows out of the default partition into monthly partitions."""
    await ensure_partitions(conn, now=NOW, ahead=0)


async def event_ids(conn: asyncpg.Connection) -> set[uuid.UUID]:
    """Every stored event id."""
    return {row["event_id"] for row in await conn.fetch("SELECT event_id FROM detection_event")}
