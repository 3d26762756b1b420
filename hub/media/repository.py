"""SQL of media regions and the hub's scan state; the only module that queries them."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from hub.contracts.detection_v1 import BoundingBox
from hub.media.schemas import KnownImage, Region, RegionCreate

_COLUMNS = "sha256, source, label, x, y, width, height, node_id, event_id"


def _unnest(first: int) -> str:
    """The nine region columns as parameters `first`..`first + 8` (`region_columns`)."""
    n = range(first, first + 9)
    types = ("text", "text", "text", "float8", "float8", "float8", "float8", "uuid", "uuid")
    return "unnest(" + ", ".join(f"${i}::{t}[]" for i, t in zip(n, types, strict=True)) + ")"


_INSERT = f"INSERT INTO media_region ({_COLUMNS}) SELECT * FROM {_unnest(1)}"


def insert_regions_of_inserted(*, first: int, inserted: str) -> str:
    """SQL recording regions (parameters `first`.. as `region_columns` gives them) of the
    events a data-modifying CTE named `inserted` returns (its `event_id`s): the body of a
    CTE of ingest's events INSERT (hub/ingest/repository.py, ADR 0030), so a batch's regions
    cost no statement of their own."""
    return f"""INSERT INTO media_region ({_COLUMNS})
    SELECT * FROM {_unnest(first)} AS r({_COLUMNS})
    WHERE r.event_id IN (SELECT event_id FROM {inserted})"""


def region_columns(regions: Sequence[RegionCreate]) -> tuple[list[Any], ...]:
    """The regions as the nine parameter columns of `insert_regions_of_inserted`."""
    # One pass per column: the array encoder wants columns, and comprehensions cost half of
    # appending each value to its column in one loop (a batch records ~60 regions).
    shown = [item.region for item in regions]
    boxes = [region.box for region in shown]
    return (
        [item.sha256 for item in regions],
        [region.source for region in shown],
        [region.label for region in shown],
        [box.x for box in boxes],
        [box.y for box in boxes],
        [box.width for box in boxes],
        [box.height for box in boxes],
        [item.node_id for item in regions],
        [item.event_id for item in regions],
    )


async def insert_regions(conn: asyncpg.Connection, regions: Sequence[RegionCreate]) -> int:
    """Record regions in one statement, in the caller's transaction; returns how many."""
    if not regions:
        return 0
    await conn.execute(_INSERT, *region_columns(regions))
    return len(regions)


async def select_image(conn: asyncpg.Connection, *, sha256: str) -> KnownImage | None:
    """The stored image with all its regions (edge and hub), or None if never uploaded."""
    row = await conn.fetchrow(
        """SELECT content_type, storage_path, scanned_at IS NULL AS pending,
                  scanned_at IS NOT NULL AND scan_error IS NULL AS scanned
           FROM media_object WHERE sha256 = $1""",
        sha256,
    )
    if row is None:
        return None
    regions = await conn.fetch(
        """SELECT label, x, y, width, height, source FROM media_region
           WHERE sha256 = $1 ORDER BY id""",
        sha256,
    )
    return KnownImage(
        sha256=sha256,
        content_type=row["content_type"],
        storage_path=row["storage_path"],
        scanned=row["scanned"],
        regions=[_region(r) for r in regions],
        pending=row["pending"],
    )


async def select_unscanned(conn: asyncpg.Connection, *, limit: int) -> list[str]:
    """Images the hub has not scanned yet, oldest first."""
    rows = await conn.fetch(
        """SELECT sha256 FROM media_object WHERE scanned_at IS NULL
           ORDER BY created_at LIMIT $1""",
        limit,
    )
    return [r["sha256"] for r in rows]


async def select_scan_state(conn: asyncpg.Connection, *, sha256: str) -> asyncpg.Record | None:
    """The image's file and scan state (content_type, storage_path, scanned_at)."""
    return await conn.fetchrow(
        "SELECT content_type, storage_path, scanned_at FROM media_object WHERE sha256 = $1",
        sha256,
    )


async def lock_for_scan(conn: asyncpg.Connection, *, sha256: str) -> asyncpg.Record | None:
    """The image's file and scan state, row-locked so two scans of it record one result."""
    return await conn.fetchrow(
        """SELECT content_type, storage_path, scanned_at FROM media_object
           WHERE sha256 = $1 FOR UPDATE""",
        sha256,
    )


async def record_scan(
    conn: asyncpg.Connection,
    *,
    sha256: str,
    regions: Sequence[RegionCreate],
    scanned_by: str,
    error: str | None,
    at: datetime,
) -> None:
    """Replace the hub's regions of an image with a scan's and mark it scanned (or failed)."""
    await conn.execute("DELETE FROM media_region WHERE sha256 = $1 AND source = 'hub'", sha256)
    await insert_regions(conn, regions)
    await conn.execute(
        """UPDATE media_object SET scanned_at = $2, scanned_by = $3, scan_error = $4
           WHERE sha256 = $1""",
        sha256,
        at,
        scanned_by,
        error,
    )


def _region(r: asyncpg.Record) -> Region:
    # Stored boxes were valid when written; rounding in float8 cannot push them past the
    # contract's tolerance, so no re-validation is needed.
    box = BoundingBox(x=r["x"], y=r["y"], width=r["width"], height=r["height"])
    return Region(label=r["label"], box=box, source=r["source"])
