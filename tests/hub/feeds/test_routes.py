"""GET /v1/feeds/events and /v1/feeds/media on a real app, PostgreSQL and Redis."""

import asyncio
import base64
import io
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from litestar.testing import AsyncTestClient
from PIL import Image

from hub.app import create_app
from hub.media import scan_image
from hub.retention.schemas import ForgetRequest
from hub.retention.service import forget
from hub.runtime import Services
from hub.settings import Settings
from tests.hub.feeds.builders import (
    CENTRAL_CAMERA,
    NORTH_CAMERA,
    bearer,
    event,
    striped_png,
    upload,
    upload_media,
    upload_to,
)
from tests.hub.media.builders import scan_kit
from tests.support import EdgeNode, ThreadedServer

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.commits]


async def page(client: AsyncTestClient, token: str, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/feeds/events", params=params, headers=bearer(token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def audit_rows(settings: Settings, action: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return await conn.fetch(
            "SELECT actor, target, detail, decision_id FROM audit_log WHERE action = $1 "
            "ORDER BY seq",
            action,
        )
    finally:
        await conn.close()


async def test_each_agency_sees_its_jurisdiction_redacted_its_way(
    feed_client: AsyncTestClient, edge_node: EdgeNode, tokens: dict[str, str], settings: Settings
) -> None:
    await upload(feed_client, edge_node, event(NORTH_CAMERA), event(CENTRAL_CAMERA))
    police = await page(feed_client, tokens["police"])
    transit = await page(feed_client, tokens["transit"])
    analytics = await page(feed_client, tokens["analytics"])

    assert [i["record"]["camera_id"] for i in police["items"]] == [NORTH_CAMERA]
    assert police["items"][0]["record"]["detections"][1]["attributes"]["plate_text"] == "AB-123-CD"
    assert [i["record"]["camera_id"] for i in transit["items"]] == [CENTRAL_CAMERA]
    hashed = transit["items"][0]["record"]["detections"][1]["attributes"]["plate_text"]
    assert hashed != "AB-123-CD"
    assert "AB-123-CD" not in str(transit)
    plate = analytics["items"][0]["record"]["detections"][1]
    assert "plate_text" not in plate.get("attributes", {})
    assert "track_id" not in analytics["items"][0]["record"]["detections"][0]
    for body in (police, transit, analytics):
        assert all(item["decision_id"] for item in body["items"])
        assert body["has_more"] is False

    reads = await audit_rows(settings, "feeds.events.read")
    assert len(reads) == 3
    assert all(r["decision_id"] for r in reads)  # the authz decision that let the page out
    police_entry = next(r for r in reads if "police-north" in r["target"])
    assert str(police["items"][0]["decision_id"]) in police_entry["detail"]
    assert "AB-123-CD" not in police_entry["detail"]  # ids and decisions only, no payloads


async def test_a_page_of_many_events_gives_each_item_its_own_attributes(
    feed_client: AsyncTestClient, edge_node: EdgeNode, tokens: dict[str, str]
) -> None:
    # More rows than a page opens and redacts between two returns to the event loop
    # (YIELD_EVERY_ROWS): every slice must keep each record with its own vault rows and
    # redact it as its own verdict says.
    plates: dict[str, dict[str, str]] = {NORTH_CAMERA: {}, CENTRAL_CAMERA: {}}
    events = []
    for n in range(90):
        camera = NORTH_CAMERA if n % 2 else CENTRAL_CAMERA
        sent = event(camera)
        sent["detections"][1]["attributes"] = {"plate_text": f"PL-{n:03d}-XY"}
        plates[camera][sent["event_id"]] = f"PL-{n:03d}-XY"
        events.append(sent)
    await upload(feed_client, edge_node, *events)
    police = await page(feed_client, tokens["police"], limit=100)
    shown = {i["event_id"]: i["record"]["detections"][1]["attributes"] for i in police["items"]}
    assert shown == {e: {"plate_text": plate} for e, plate in plates[NORTH_CAMERA].items()}
    transit = await page(feed_client, tokens["transit"], limit=100)
    assert {i["event_id"] for i in transit["items"]} == set(plates[CENTRAL_CAMERA])
    hashed = [i["record"]["detections"][1]["attributes"]["plate_text"] for i in transit["items"]]
    assert len(set(hashed)) == 45  # each its own plate's hash
    assert not any(plate in str(transit) for plate in plates[CENTRAL_CAMERA].values())


async def test_a_forgotten_plate_leaves_the_feed(
    feed_client: AsyncTestClient,
    feed_services: Services,
    edge_node: EdgeNode,
    tokens: dict[str, str],
) -> None:
    await upload(feed_client, edge_node, event(NORTH_CAMERA))
    before = await page(feed_client, tokens["police"])
    assert before["items"][0]["record"]["detections"][1]["attributes"]["plate_text"] == "AB-123-CD"

    await forget(
        feed_services.db,
        feed_services.retention,
        ForgetRequest(reason="erasure request", plate_text="AB-123-CD"),
        actor="user:officer",
    )
    after = await page(feed_client, tokens["police"])
    assert [i["event_id"] for i in after["items"]] == [i["event_id"] for i in before["items"]]
    assert "AB-123" not in str(after)
    assert after["items"][0]["record"]["detections"][1].get("attributes", {}) == {}


async def test_cursor_pages_through_everything_once_and_filters_apply(
    feed_client: AsyncTestClient,
    feed_services: Services,
    edge_node: EdgeNode,
    tokens: dict[str, str],
) -> None:
    now = datetime.now(UTC)
    events = [
        event(
            NORTH_CAMERA if i % 3 else "demo-cam-9",
            captured_at=(now - timedelta(minutes=30 - i)).isoformat(),
        )
        for i in range(25)
    ]
    events[4]["detections"] = [events[4]["detections"][1]]  # plate only
    await upload(feed_client, edge_node, *events)
    token = tokens["police"]

    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 7}
        if cursor:
            params["cursor"] = cursor
        body = await page(feed_client, token, **params)
        seen += [i["seq"] for i in body["items"]]
        cursor = body["next_cursor"]
        if not body["has_more"]:
            break
    north = [e for e in events if e["camera_id"] == NORTH_CAMERA]
    assert len(seen) == len(set(seen)) == len(north)  # demo-cam-9 has no jurisdiction: withheld
    hub_wide = feed_services.feeds.positions.stated(seen, agency="police-north")
    assert hub_wide == sorted(hub_wide)  # pages follow the feed's order

    only_camera = await page(feed_client, token, camera=NORTH_CAMERA, limit=500)
    assert len(only_camera["items"]) == len(north)
    plates_only = await page(feed_client, token, **{"class": "person", "limit": 500})
    assert len(plates_only["items"]) == len(north) - (0 if events[4] not in north else 1)
    since = (now - timedelta(minutes=10, seconds=30)).isoformat()
    recent = await page(feed_client, token, since=since, limit=500)
    expected = [e for e in north if e["captured_at"] >= since]
    assert {i["event_id"] for i in recent["items"]} == {e["event_id"] for e in expected}
    until = await page(feed_client, token, until=since, limit=500)
    assert len(until["items"]) == len(north) - len(expected)


async def test_positions_and_cursors_say_nothing_of_events_the_agency_was_not_shown(
    feed_client: AsyncTestClient,
    feed_services: Services,
    edge_node: EdgeNode,
    tokens: dict[str, str],
) -> None:
    # Thirty events police-north may not see (central jurisdiction) between two it may.
    await upload(feed_client, edge_node, event(NORTH_CAMERA))
    await upload(feed_client, edge_node, *[event(CENTRAL_CAMERA) for _ in range(30)])
    await upload(feed_client, edge_node, event(NORTH_CAMERA))
    first = await page(feed_client, tokens["police"], limit=1)
    second = await page(feed_client, tokens["police"], cursor=first["next_cursor"])
    shown = [i["seq"] for i in first["items"] + second["items"]]
    central = [i["seq"] for i in (await page(feed_client, tokens["transit"]))["items"]]

    hub_wide = feed_services.feeds.positions.stated(shown, agency="police-north")
    assert hub_wide[1] - hub_wide[0] == 31  # what the hub knows and police-north must not
    assert len(central) == 30
    assert not set(shown) & set(hub_wide)
    assert abs(shown[1] - shown[0]) > 10**6  # pseudonyms, at no telling distance
    for cursor in (first["next_cursor"], second["next_cursor"]):
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        assert len(raw) == 25  # one fixed size, encrypted: no position to read
        assert str(hub_wide[0]).encode() not in raw
    assert len(first["next_cursor"]) == len(second["next_cursor"])


async def test_bad_cursors_are_refused(
    feed_client: AsyncTestClient, edge_node: EdgeNode, tokens: dict[str, str]
) -> None:
    await upload(feed_client, edge_node, event(NORTH_CAMERA), event(CENTRAL_CAMERA))
    police = tokens["police"]
    transit = tokens["transit"]
    cursor = (await page(feed_client, police))["next_cursor"]
    # One character of the sealed cursor changed, always (writing "AA" over its end left it
    # unchanged when it already ended so). The third from the end holds only ciphertext bits.
    tampered = cursor[:-3] + ("B" if cursor[-3] == "A" else "A") + cursor[-2:]
    for token, bad in ((transit, cursor), (police, tampered), (police, "garbage")):
        response = await feed_client.get(
            "/v1/feeds/events", params={"cursor": bad}, headers=bearer(token)
        )
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "cursor_invalid"
    too_big = await feed_client.get(
        "/v1/feeds/events", params={"limit": 501}, headers=bearer(police)
    )
    assert too_big.status_code == 400


async def test_etag_answers_304_until_something_changes(
    feed_client: AsyncTestClient, edge_node: EdgeNode, tokens: dict[str, str]
) -> None:
    await upload(feed_client, edge_node, event(NORTH_CAMERA))
    token = tokens["police"]
    first = await feed_client.get("/v1/feeds/events", headers=bearer(token))
    etag = first.headers["etag"]
    again = await feed_client.get(
        "/v1/feeds/events", headers={**bearer(token), "If-None-Match": etag}
    )
    assert again.status_code == 304
    assert again.content == b""
    await upload(feed_client, edge_node, event(NORTH_CAMERA))
    changed = await feed_client.get(
        "/v1/feeds/events", headers={**bearer(token), "If-None-Match": etag}
    )
    assert changed.status_code == 200
    assert len(changed.json()["items"]) == 2
    assert changed.headers["etag"] != etag


async def test_long_poll_returns_within_a_second_of_a_new_event(
    feed_settings: Settings, agencies: None, edge_node: EdgeNode, tokens: dict[str, str]
) -> None:
    with ThreadedServer(create_app(feed_settings)) as server:
        await upload_to(server.url, edge_node, event(NORTH_CAMERA))
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            first = await http.get("/v1/feeds/events", headers=bearer(tokens["police"]))
            cursor = first.json()["next_cursor"]

            async def poll() -> tuple[httpx.Response, float]:
                response = await http.get(
                    "/v1/feeds/events",
                    params={"cursor": cursor, "wait": 20},
                    headers=bearer(tokens["police"]),
                )
                return response, time.monotonic()

            waiting = asyncio.create_task(poll())
            await asyncio.sleep(1.5)
            assert not waiting.done()  # nothing new: the request waits instead of answering
            fresh = event(NORTH_CAMERA)
            await upload_to(server.url, edge_node, fresh)
            stored_at = time.monotonic()
            response, answered_at = await asyncio.wait_for(waiting, 5)
    assert response.status_code == 200, response.text
    assert [i["event_id"] for i in response.json()["items"]] == [fresh["event_id"]]
    assert answered_at - stored_at < 1.0


async def test_every_feed_refuses_the_wrong_roles_and_attributes(
    feed_client: AsyncTestClient, edge_node: EdgeNode, tokens: dict[str, str]
) -> None:
    _, sha = striped_png()
    admin = tokens["admin"]
    marketing = tokens["marketing"]
    statistics = tokens["analytics"]  # clearance 1: no media
    unregistered = tokens["unregistered"]
    paths = ["/v1/feeds/events", f"/v1/feeds/media/{sha}"]
    for token in (admin, marketing):
        for path in paths:
            response = await feed_client.get(path, headers=bearer(token))
            assert response.status_code == 403, (path, response.text)
            assert response.json()["decision_id"]
    media = await feed_client.get(f"/v1/feeds/media/{sha}", headers=bearer(statistics))
    assert media.status_code == 403
    stranger = await feed_client.get("/v1/feeds/events", headers=bearer(unregistered))
    assert (stranger.status_code, stranger.json()["code"]) == (403, "agency_unknown")
    anonymous = await feed_client.get("/v1/feeds/events")
    assert anonymous.status_code == 401

    # Jurisdiction: an agency whose token holds no jurisdiction of an event never gets it.
    await upload(feed_client, edge_node, event(NORTH_CAMERA))
    narrowed = tokens["south"]
    assert (await page(feed_client, narrowed))["items"] == []
    transit = tokens["transit"]
    assert (await page(feed_client, transit))["items"] == []


def _stripe_contrast(data: bytes, box: tuple[int, int, int, int]) -> int:
    image = Image.open(io.BytesIO(data)).convert("L").crop(box)
    low, high = image.getextrema()
    return int(high) - int(low)


async def test_media_is_blurred_for_the_agency_and_hidden_from_others(
    feed_client: AsyncTestClient,
    services: Services,
    edge_node: EdgeNode,
    tokens: dict[str, str],
    settings: Settings,
) -> None:
    data, sha = striped_png()
    await upload_media(feed_client, edge_node, data, sha)
    north = event(NORTH_CAMERA, media=[{"sha256": sha, "content_type": "image/png"}])
    north["detections"].append(
        {
            "label": "face",
            "confidence": 0.9,
            "box": {"x": 0.1, "y": 0.5, "width": 0.2, "height": 0.4},
        }
    )
    await upload(feed_client, edge_node, north)
    await scan_image(services.db, scan_kit(settings.media_dir), sha256=sha)
    police = tokens["police"]
    transit = tokens["transit"]

    shown = await feed_client.get(f"/v1/feeds/media/{sha}", headers=bearer(police))
    assert shown.status_code == 200
    assert shown.headers["content-type"].startswith("image/png")
    assert shown.headers["x-decision-id"]
    # police-north's profile blurs faces only: the face region is smooth, the plate is not.
    assert _stripe_contrast(shown.content, (40, 70, 50, 80)) < 60
    assert _stripe_contrast(shown.content, (140, 70, 150, 80)) > 200
    assert _stripe_contrast(data, (40, 70, 50, 80)) > 200

    hidden = await feed_client.get(f"/v1/feeds/media/{sha}", headers=bearer(transit))
    missing = await feed_client.get(f"/v1/feeds/media/{'a' * 64}", headers=bearer(police))
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["code"] == missing.json()["code"] == "media_not_found"
    assert len(await audit_rows(settings, "feeds.media.read")) == 1
    assert len(await audit_rows(settings, "feeds.media.refused")) == 2
