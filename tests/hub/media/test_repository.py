"""Region rows as `insert_regions` writes them from its text parameters (real PostgreSQL):
every value exact, and no event ids for the hub's own regions, however many there are."""

import uuid

import pytest

from hub.contracts.detection_v1 import BoundingBox
from hub.media.repository import insert_regions
from hub.media.schemas import Region, RegionCreate
from hub.runtime import Services

pytestmark = [pytest.mark.db]
SHA = "ab" * 32
# Doubles whose shortest text has many digits: they must come back bit for bit.
BOX = BoundingBox(x=1 / 3, y=0.1 + 0.2, width=2 / 7, height=5e-324)


def _hub(label: str) -> RegionCreate:
    return RegionCreate(sha256=SHA, region=Region(label=label, box=BOX, source="hub"))


def _edge(label: str) -> RegionCreate:
    region = Region(label=label, box=BOX, source="edge")
    return RegionCreate(
        sha256=SHA, region=region, node_id=str(uuid.uuid4()), event_id=str(uuid.uuid4())
    )


@pytest.mark.parametrize(
    "regions",
    [
        [_hub("face")],  # one region without ids: "" is no item for string_to_array
        [_hub("face"), _hub("text"), _hub("face")],
        [_edge("person")],
        [_edge("person"), _edge("car.red-2")],
    ],
    ids=["one-hub", "three-hub", "one-edge", "two-edge"],
)
async def test_regions_are_stored_as_given(services: Services, regions: list[RegionCreate]) -> None:
    async with services.db.pool.acquire() as conn:
        assert await insert_regions(conn, regions) == len(regions)
        rows = await conn.fetch(
            """SELECT sha256, source, label, x, y, width, height, node_id::text, event_id::text
               FROM media_region ORDER BY id"""
        )
    assert [tuple(r) for r in rows] == [
        (
            r.sha256,
            r.region.source,
            r.region.label,
            BOX.x,
            BOX.y,
            BOX.width,
            BOX.height,
            r.node_id,
            r.event_id,
        )
        for r in regions
    ]


async def test_no_regions_write_nothing(services: Services) -> None:
    async with services.db.pool.acquire() as conn:
        assert await insert_regions(conn, []) == 0
        assert await conn.fetchval("SELECT count(*) FROM media_region") == 0
