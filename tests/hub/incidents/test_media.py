"""Incident snapshots and evidence packages: the image as released to the officer, blurred by
every region known on it, measured on the pixels."""

import hashlib
import io
import zipfile

import pytest
from litestar.testing import AsyncTestClient

from hub.identity.oauth import UserCreate, add_user
from hub.media import scan_image
from hub.runtime import Services
from tests.hub.feeds.builders import upload, upload_media
from tests.hub.media.builders import (
    FACE_BOX,
    PLATE_BOX,
    assert_blurred,
    assert_unchanged_outside,
    demo_frame,
    detection_event,
    face,
    plate,
    scan_kit,
)
from tests.support import EdgeNode

pytestmark = [pytest.mark.db, pytest.mark.redis]

PASSWORD = "correct horse battery staple"


async def test_a_linked_face_event_shows_its_frame_with_the_plate_blurred_too(
    client: AsyncTestClient, services: Services, edge_node: EdgeNode
) -> None:
    frame = demo_frame()
    sha = hashlib.sha256(frame).hexdigest()
    await upload_media(client, edge_node, frame, sha)
    face_event = detection_event("demo-cam-1", sha, face())
    # The plate was reported by another event, which the officer did not link.
    await upload(client, edge_node, face_event, detection_event("demo-cam-1", sha, plate()))
    headers = await _officer(client, services)
    made = (await client.post("/v1/incidents", json={"title": "Gate"}, headers=headers)).json()
    base = f"/v1/incidents/{made['id']}"
    linked = await client.post(
        f"{base}/events", json={"event_id": face_event["event_id"]}, headers=headers
    )
    assert linked.status_code == 201, linked.text

    # Not scanned yet: the console recipient blurs faces and plates, so it is withheld, and
    # an evidence package is not made without it.
    for waiting in (
        await client.get(f"{base}/media/{sha}", headers=headers),
        await client.post(f"{base}/export", headers=headers),
    ):
        assert waiting.status_code == 503, waiting.text
        assert waiting.json()["code"] == "media_not_scanned"

    await scan_image(services.db, scan_kit(services.settings.media_dir), sha256=sha)
    shown = await client.get(f"{base}/media/{sha}", headers=headers)
    assert shown.status_code == 200, shown.text
    for image in (shown.content, await _exported(client, base, headers, sha)):
        assert_blurred(frame, image, FACE_BOX)
        assert_blurred(frame, image, PLATE_BOX)
        assert_unchanged_outside(frame, image, FACE_BOX, PLATE_BOX)


async def _officer(client: AsyncTestClient, services: Services) -> dict[str, str]:
    """Headers of a compliance officer of both demo jurisdictions."""
    await add_user(
        services.identity,
        UserCreate(
            username="olga",
            password=PASSWORD,
            roles=["compliance_officer"],
            jurisdictions=["north", "central"],
            clearance=3,
        ),
        actor="test",
    )
    answer = await client.post(
        "/oauth/token", data={"grant_type": "password", "username": "olga", "password": PASSWORD}
    )
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def _exported(client: AsyncTestClient, base: str, headers: dict[str, str], sha: str) -> bytes:
    package = (await client.post(f"{base}/export", headers=headers)).content
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        return archive.read(f"media/{sha}.png")
