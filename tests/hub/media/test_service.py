"""Regions recorded at ingest and by the hub's scan, on real PostgreSQL."""

import hashlib
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from hub.media import ScanKit, load_image, scan_image, unscanned
from hub.media.scan import ScannerUnavailableError
from hub.runtime import Services
from tests.hub.feeds.builders import upload, upload_media
from tests.hub.media.builders import (
    FACE_BOX,
    PLATE_BOX,
    demo_frame,
    detection_event,
    face,
    person,
    plate,
    scan_kit,
)
from tests.support import EdgeNode

pytestmark = [pytest.mark.db, pytest.mark.redis]


async def test_every_event_adds_its_boxes_to_the_image_once(
    client: AsyncTestClient, services: Services, edge_node: EdgeNode
) -> None:
    frame = demo_frame()
    sha = hashlib.sha256(frame).hexdigest()
    await upload_media(client, edge_node, frame, sha)
    face_event = detection_event("demo-cam-2", sha, face())
    plate_event = detection_event("demo-cam-2", sha, plate())
    await upload(client, edge_node, face_event, plate_event)
    await upload(client, edge_node, face_event)  # a re-send adds nothing
    # A later event naming the image with no face box takes nothing away; sent beside a
    # re-send, only the new event's boxes are added.
    await upload(client, edge_node, face_event, detection_event("demo-cam-2", sha, person()))
    image = await load_image(services.db, sha256=sha)
    assert image is not None
    assert not image.scanned
    found = sorted((r.label, r.box.x, r.box.y, r.source) for r in image.regions)
    assert found == [
        ("face", FACE_BOX.x, FACE_BOX.y, "edge"),
        ("person", 0.7, 0.1, "edge"),
        ("plate", PLATE_BOX.x, PLATE_BOX.y, "edge"),
    ]


async def test_a_crop_reference_covers_the_whole_crop(
    client: AsyncTestClient, services: Services, edge_node: EdgeNode
) -> None:
    frame = demo_frame()
    sha = hashlib.sha256(frame).hexdigest()
    await upload(client, edge_node, detection_event("demo-cam-2", sha, face(), kind="crop"))
    await upload_media(client, edge_node, frame, sha)  # after the event: regions kept
    image = await load_image(services.db, sha256=sha)
    assert image is not None
    assert [(r.label, r.box.x, r.box.width, r.box.height) for r in image.regions] == [
        ("face", 0.0, 1.0, 1.0)
    ]


async def test_the_scan_runs_once_and_keeps_its_boxes(
    client: AsyncTestClient, services: Services, edge_node: EdgeNode
) -> None:
    frame = demo_frame()
    sha = hashlib.sha256(frame).hexdigest()
    await upload_media(client, edge_node, frame, sha)
    assert await unscanned(services.db) == [sha]
    kit = scan_kit(services.settings.media_dir)
    first = await scan_image(services.db, kit, sha256=sha)
    assert (first.status, first.regions) == ("scanned", 2)
    assert first.cpu_ms > 0
    again = await scan_image(services.db, kit, sha256=sha)
    assert again.status == "skipped"
    image = await load_image(services.db, sha256=sha)
    assert image is not None
    assert image.scanned
    assert sorted((r.label, r.source) for r in image.regions) == [
        ("face", "hub"),
        ("plate", "hub"),
    ]
    assert await unscanned(services.db) == []
    actions = await services.db.pool.fetch(
        "SELECT action FROM audit_log WHERE target = $1", f"media:{sha}"
    )
    assert sorted(a["action"] for a in actions) == ["ingest.media", "media.scanned"]


async def test_an_undecodable_image_fails_its_scan_and_stays_unreleasable(
    client: AsyncTestClient, services: Services, edge_node: EdgeNode
) -> None:
    data = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    sha = hashlib.sha256(data).hexdigest()
    await upload_media(client, edge_node, data, sha)
    outcome = await scan_image(services.db, scan_kit(services.settings.media_dir), sha256=sha)
    assert outcome.status == "failed"
    image = await load_image(services.db, sha256=sha)
    assert image is not None
    assert not image.scanned
    assert await unscanned(services.db) == []  # not retried: it would fail again


async def test_a_missing_image_is_reported_not_scanned(services: Services) -> None:
    media = Path(services.settings.media_dir)  # shared by the session's tests
    before = sorted(p.relative_to(media) for p in media.rglob("*"))
    outcome = await scan_image(services.db, scan_kit(services.settings.media_dir), sha256="c" * 64)
    assert outcome.status == "missing"
    assert sorted(p.relative_to(media) for p in media.rglob("*")) == before  # nothing written


async def test_regions_go_with_their_image(
    client: AsyncTestClient, services: Services, edge_node: EdgeNode
) -> None:
    frame = demo_frame()
    sha = hashlib.sha256(frame).hexdigest()
    await upload_media(client, edge_node, frame, sha)
    await upload(client, edge_node, detection_event("demo-cam-2", sha, face()))
    async with services.db.transaction() as conn:  # as the retention sweep deletes media
        await conn.execute("DELETE FROM media_object WHERE sha256 = $1", sha)
        left = await conn.fetchval("SELECT count(*) FROM media_region WHERE sha256 = $1", sha)
    assert left == 0


async def test_without_models_the_image_stays_unscanned(
    client: AsyncTestClient, services: Services, edge_node: EdgeNode, tmp_path: Path
) -> None:
    frame = demo_frame()
    sha = hashlib.sha256(frame).hexdigest()
    await upload_media(client, edge_node, frame, sha)
    blocked = tmp_path / "not-a-folder"
    blocked.write_bytes(b"")  # the model cache cannot be created: no CenterFace here
    kit = ScanKit(media_root=Path(services.settings.media_dir), model_cache=blocked)
    with pytest.raises(ScannerUnavailableError):
        await scan_image(services.db, kit, sha256=sha)
    assert await unscanned(services.db) == [sha]  # reconcile will queue it again
