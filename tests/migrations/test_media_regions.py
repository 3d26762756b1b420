"""Migration 0009 gives events stored before it their regions (the backfill statement)."""

import json
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from hub.settings import Settings
from tests.support import repo_root

pytestmark = [pytest.mark.db, pytest.mark.commits]

MARK = "-- Events stored before this migration"


async def test_backfill_turns_stored_boxes_into_edge_regions(settings: Settings) -> None:
    sql = (repo_root() / "migrations/sql/0009_media_regions.sql").read_text(encoding="utf-8")
    backfill = sql[sql.index(MARK) :]
    snapshot, crop = "d" * 64, "e" * 64
    payload = {
        "detections": [
            {
                "label": "face",
                "confidence": 0.9,
                "box": {"x": 0.1, "y": 0.2, "width": 0.3, "height": 0.4},
            },
            {
                "label": "plate",
                "confidence": 0.8,
                "box": {"x": 0.5, "y": 0.6, "width": 0.2, "height": 0.1},
            },
        ],
        "media": [{"sha256": snapshot, "kind": "snapshot"}, {"sha256": crop, "kind": "crop"}],
    }
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(
            """INSERT INTO detection_event (node_id, event_id, captured_at, camera_id, classes,
                   max_confidence, content_sha256, payload)
               VALUES ($1, $2, $3, 'cam', '{face,plate}', 0.9, '\\x00', $4::jsonb)""",
            uuid.uuid4(),
            uuid.uuid4(),
            datetime.now(UTC),
            json.dumps(payload),
        )
        await conn.execute(backfill)
        rows = await conn.fetch(
            "SELECT sha256, label, x, y, width, height, source FROM media_region ORDER BY 1, 2"
        )
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [
        (snapshot, "face", 0.1, 0.2, 0.3, 0.4, "edge"),
        (snapshot, "plate", 0.5, 0.6, 0.2, 0.1, "edge"),
        (crop, "face", 0.0, 0.0, 1.0, 1.0, "edge"),
        (crop, "plate", 0.0, 0.0, 1.0, 1.0, "edge"),
    ]
