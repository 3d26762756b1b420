"""GET /v1/feeds/media: one image, every region known on it, measured on the pixels."""

import hashlib
import io
from datetime import UTC, datetime

import asyncpg
import msgspec
import numpy as np
import pytest
from litestar.testing import AsyncTestClient
from PIL import Image

from edge.agent import Pipeline, Stage
from edge.capture import Frame
from edge.detectors import CenterFaceDetector, PlateReader
from edge.models import (
    RAPIDOCR_DET,
    RAPIDOCR_DIST,
    RAPIDOCR_REC,
    default_cache_dir,
    packaged_file,
    prepare_centerface,
)
from edge.tracker import IouTracker
from hub.contracts.detection_v1 import MediaRef
from hub.media import scan_image
from hub.media.schemas import WHOLE_IMAGE
from hub.runtime import Services
from hub.settings import Settings
from tests.hub.feeds.builders import CENTRAL_CAMERA, NORTH_CAMERA, bearer, upload, upload_media
from tests.hub.media.builders import (
    FACE_BOX,
    PLATE_BOX,
    assert_blurred,
    assert_clear,
    assert_unchanged_outside,
    demo_frame,
    detection_event,
    face,
    person,
    plate,
    scan_kit,
)
from tests.support import EdgeNode, signed_headers

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.commits]


async def _get(client: AsyncTestClient, token: str, sha: str) -> bytes | None:
    response = await client.get(f"/v1/feeds/media/{sha}", headers=bearer(token))
    if response.status_code == 404:
        assert response.json()["code"] == "media_not_found"
        return None
    assert response.status_code == 200, response.text
    assert response.headers["x-decision-id"]
    return response.content


async def _mark_scanned_empty(settings: Settings, sha: str) -> None:
    """As if the hub's scan ran and found nothing: the edge's boxes are all there is."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(
            "UPDATE media_object SET scanned_at = now(), scanned_by = 'test' WHERE sha256 = $1",
            sha,
        )
    finally:
        await conn.close()


async def test_a_face_event_and_a_plate_event_on_one_frame_blur_both_for_every_recipient(
    feed_client: AsyncTestClient,
    services: Services,
    edge_node: EdgeNode,
    tokens: dict[str, str],
    settings: Settings,
) -> None:
    frame = demo_frame()
    sha = hashlib.sha256(frame).hexdigest()
    await upload_media(feed_client, edge_node, frame, sha)
    # The edge sends one event per detector: the face and the plate come separately.
    for camera in (CENTRAL_CAMERA, NORTH_CAMERA):
        await upload(feed_client, edge_node, detection_event(camera, sha, face()))
        await upload(feed_client, edge_node, detection_event(camera, sha, plate()))

    # Not scanned yet: withheld from every recipient whose policy blurs anything, and said
    # so (503, ask again) to those a release allows it to.
    for token in (tokens["transit"], tokens["police"]):
        waiting = await feed_client.get(f"/v1/feeds/media/{sha}", headers=bearer(token))
        assert waiting.status_code == 503, waiting.text
        assert waiting.json()["code"] == "media_not_scanned"
        assert waiting.headers["retry-after"] == "5"

    await scan_image(services.db, scan_kit(settings.media_dir), sha256=sha)
    transit = await _get(feed_client, tokens["transit"], sha)  # blurs faces and plates
    assert transit is not None
    assert_blurred(frame, transit, FACE_BOX)
    assert_blurred(frame, transit, PLATE_BOX)
    assert_unchanged_outside(frame, transit, FACE_BOX, PLATE_BOX)
    police = await _get(feed_client, tokens["police"], sha)  # blurs faces, plates in clear
    assert police is not None
    assert_blurred(frame, police, FACE_BOX)
    assert_clear(frame, police, PLATE_BOX)


async def test_a_newer_event_without_boxes_does_not_unblur_the_image(
    feed_client: AsyncTestClient,
    services: Services,
    edge_node: EdgeNode,
    tokens: dict[str, str],
    settings: Settings,
) -> None:
    frame = demo_frame()
    sha = hashlib.sha256(frame).hexdigest()
    await upload_media(feed_client, edge_node, frame, sha)
    await upload(feed_client, edge_node, detection_event(CENTRAL_CAMERA, sha, face(), plate()))
    await _mark_scanned_empty(settings, sha)
    # Newest: an event that names the same image and reports only a person elsewhere.
    await upload(feed_client, edge_node, detection_event(CENTRAL_CAMERA, sha, person()))
    shown = await _get(feed_client, tokens["transit"], sha)
    assert shown is not None
    assert_blurred(frame, shown, FACE_BOX)
    assert_blurred(frame, shown, PLATE_BOX)


async def test_a_crop_of_a_blurred_class_is_blurred_whole(
    feed_client: AsyncTestClient, edge_node: EdgeNode, tokens: dict[str, str], settings: Settings
) -> None:
    with Image.open(io.BytesIO(demo_frame())) as full:
        crop = full.crop((80, 70, 180, 190))
        out = io.BytesIO()
        crop.save(out, format="PNG")
    data = out.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    await upload_media(feed_client, edge_node, data, sha)
    await upload(feed_client, edge_node, detection_event(NORTH_CAMERA, sha, face(), kind="crop"))
    await _mark_scanned_empty(settings, sha)
    shown = await _get(feed_client, tokens["police"], sha)
    assert shown is not None
    assert_blurred(data, shown, WHOLE_IMAGE)


async def test_the_real_edge_pipeline_sends_two_events_for_one_snapshot_and_both_regions_blur(
    feed_client: AsyncTestClient,
    services: Services,
    edge_node: EdgeNode,
    tokens: dict[str, str],
    settings: Settings,
) -> None:
    """The edge agent's own detectors on the demo frame: one face event and one plate event,
    each naming the same JPEG; what transit-authority gets has both regions blurred."""
    pipeline = Pipeline(CENTRAL_CAMERA, [Stage(d, IouTracker()) for d in edge_detectors()])
    with Image.open(io.BytesIO(demo_frame())) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    out = pipeline.process(Frame(image=pixels, captured_at=datetime.now(UTC), offset=0, index=0))
    assert sorted(event.model_name for event, _ in out) == ["centerface", "rapidocr"]
    shots = {shot.sha256: shot for _, snapshots in out for shot in snapshots}
    (snapshot,) = shots.values()  # both events carry the very same frame
    await _upload_jpeg(feed_client, edge_node, snapshot.data, snapshot.sha256)
    events = [
        msgspec.to_builtins(
            msgspec.structs.replace(event, media=[MediaRef(sha256=snapshot.sha256)])
        )
        for event, _ in out
    ]
    await upload(feed_client, edge_node, *events)
    await scan_image(services.db, scan_kit(settings.media_dir), sha256=snapshot.sha256)
    shown = await _get(feed_client, tokens["transit"], snapshot.sha256)
    assert shown is not None
    for event, _ in out:
        for detection in event.detections:
            assert_blurred(snapshot.data, shown, detection.box)


def edge_detectors() -> list[CenterFaceDetector | PlateReader]:
    """The detectors `hub up`'s demo camera runs (edge.toml of hub/cli/demo_edge.py)."""
    return [
        CenterFaceDetector(prepare_centerface(default_cache_dir()), threshold=0.6),
        PlateReader(
            packaged_file(RAPIDOCR_DIST, RAPIDOCR_DET), packaged_file(RAPIDOCR_DIST, RAPIDOCR_REC)
        ),
    ]


async def _upload_jpeg(client: AsyncTestClient, node: EdgeNode, data: bytes, sha: str) -> None:
    path = f"/v1/edge/media/{sha}"
    headers = signed_headers(node.signer, path=path, body=data, content_type="image/jpeg")
    response = await client.post(path, content=data, headers=headers)
    assert response.status_code == 200, response.text
