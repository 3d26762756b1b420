"""SQL of media regions and the hub's scan state; the only module that queries them."""

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from hub.contracts.detection_v1 import BoundingBox
from hub.kit.db import joined_column, literal_column
from hub.media.schemas import KnownImage, Region, RegionCreate

_COLUMNS = "sha256, source, label, x, y, width, height, node_id, event_id"
# How SQL reads each column's parameter (`region_columns`): the texts joined by ";", the
# coordinates as an array literal, the event's ids joined with "" for none (the hub's scan).
# Neither a hex digest, a source, a label (the contract's pattern, the scan's own two) nor a
# uuid can hold ";". A single region of the scan sends "" (no item at all for
# string_to_array), and unnest pads a shorter array with NULLs: the same NULL.
_TEXT = "string_to_array(${}::text, ';')"
_FLOAT8 = "${}::text::float8[]"
_UUID = "string_to_array(${}::text, ';', '')::uuid[]"
_READS = (_TEXT, _TEXT, _TEXT, _FLOAT8, _FLOAT8, _FLOAT8, _FLOAT8, _UUID, _UUID)


def _unnest(first: int) -> str:
    """The nine region columns as parameters `first`..`first + 8` (`region_columns`)."""
    n = range(first, first + len(_READS))
    return "unnest(" + ", ".join(r.format(i) for i, r in zip(n, _READS, strict=True)) + ")"


_INSERT = f"INSERT INTO media_region ({_COLUMNS}) SELECT * FROM {_unnest(1)}"


def insert_regions_of_inserted(*, first: int, inserted: str) -> str:
    """SQL recording regions (parameters `first`.. as `region_columns` gives them) of the
    events a data-modifying CTE named `inserted` returns (its `event_id`s): the body of a
    CTE of ingest's events INSERT (hub/ingest/repository.py, ADR 0030), so a batch's regions
    cost no statement of their own."""
    return f"""INSERT INTO media_region ({_COLUMNS})
    SELECT * FROM {_unnest(first)} AS r({_COLUMNS})
    WHERE r.event_id IN (SELECT event_id FROM {inserted})"""


def region_columns(regions: Sequence[RegionCreate]) -> tuple[str, ...]:
    """The regions as the nine parameter columns of `insert_regions_of_inserted`, each one
    text (`joined_column`, `literal_column`): not arrays, whose every element asyncpg checks
    against ABCs in Python (~0.2 µs each, ~600 checks a batch for these columns)."""
    # One pass per column: comprehensions cost half of appending each value to its column in
    # one loop (a batch records ~60 regions).
    shown = [item.region for item in regions]
    boxes = [region.box for region in shown]
    return (
        joined_column([item.sha256 for item in regions]),
        joined_column([region.source for region in shown]),
        joined_column([region.label for region in shown]),
        literal_column([box.x for box in boxes]),
        literal_column([box.y for box in boxes]),
        literal_column([box.width for box in boxes]),
        literal_column([box.height for box in boxes]),
        joined_column([item.node_id or "" for item in regions]),
        joined_column([item.event_id or "" for item in regions]),
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
