"""A paused agency gets nothing from the pull feeds: REST pages and media answer 403
problem+json `agency_paused`, SOAP GetEvents a Client fault; acknowledging what it already
received still works, and other agencies are served as before."""

import pytest
from litestar.testing import AsyncTestClient
from lxml import etree

from hub.delivery.agencies import pause_agency
from hub.kit.soap import SOAP_ENV
from hub.runtime import Services
from tests.hub.feeds.builders import CENTRAL_CAMERA, NORTH_CAMERA, bearer, event, upload
from tests.support import EdgeNode

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.commits]

TNS = "urn:hub:feeds:v1"
SHA = "0" * 64


def envelope(body: str) -> bytes:
    return (
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body>{body}</soap:Body></soap:Envelope>'
    ).encode()


async def soap(client: AsyncTestClient, token: str, body: str) -> tuple[int, etree._Element]:
    headers = {**bearer(token), "Content-Type": "text/xml; charset=utf-8"}
    answer = await client.post("/soap/feed", content=envelope(body), headers=headers)
    return answer.status_code, etree.fromstring(answer.content)


async def test_a_paused_agency_is_refused_pages_media_and_get_events(
    feed_client: AsyncTestClient,
    feed_services: Services,
    edge_node: EdgeNode,
    tokens: dict[str, str],
) -> None:
    await upload(feed_client, edge_node, event(NORTH_CAMERA), event(CENTRAL_CAMERA))
    # Paused before the app's first look at the agency (it caches agencies for two seconds).
    await pause_agency(feed_services.db, "police-north", reason="maintenance", actor="test")
    police = tokens["police"]

    page = await feed_client.get("/v1/feeds/events", headers=bearer(police))
    media = await feed_client.get(f"/v1/feeds/media/{SHA}", headers=bearer(police))
    status, fault = await soap(feed_client, police, f'<GetEvents xmlns="{TNS}"/>')
    ack_status, acked = await soap(
        feed_client, police, f'<Acknowledge xmlns="{TNS}"><seq>{10**15}</seq></Acknowledge>'
    )
    transit = await feed_client.get("/v1/feeds/events", headers=bearer(tokens["transit"]))

    for answer in (page, media):
        assert answer.status_code == 403, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["type"] == "/problems/agency_paused"
        assert "police-north" in answer.json()["detail"]
    assert status == 403
    assert acked.findtext(f".//{{{TNS}}}acknowledged") == "1", ack_status
    assert fault.findtext(f".//{{{SOAP_ENV}}}Fault/faultcode") == "soap:Client"
    assert (fault.findtext(f".//{{{SOAP_ENV}}}Fault/faultstring") or "").startswith("agency_paused")
    assert transit.status_code == 200
    assert [i["record"]["camera_id"] for i in transit.json()["items"]] == [CENTRAL_CAMERA]
