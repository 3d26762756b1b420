"""Queries of the operations read-outs that are not figures (those live in overview.py)."""

from typing import Any
from uuid import UUID

import asyncpg


async def select_delivery_metadata(
    conn: asyncpg.Connection, delivery_id: UUID
) -> dict[str, Any] | None:
    """A delivery's ids, status and counts (labels counted in SQL: no payload leaves it)."""
    row = await conn.fetchrow(
        """SELECT d.id, a.name AS agency, d.status, d.attempts, d.last_error, d.decision_id,
                  e.event_id, e.camera_id, coalesce(cardinality(e.media_sha256), 0) AS media,
                  (SELECT coalesce(jsonb_object_agg(label, n), '{}'::jsonb)
                     FROM (SELECT x->>'label' AS label, count(*) AS n
                             FROM jsonb_array_elements(e.payload->'detections') AS x
                            GROUP BY 1) AS counted)::text AS detections
           FROM delivery d
           JOIN agency a ON a.id = d.agency_id
           LEFT JOIN detection_event e ON e.id = d.event_pk AND e.captured_at = d.event_captured_at
           WHERE d.id = $1""",
        delivery_id,
    )
    return None if row is None else dict(row)
