"""The matrix's world: the hub on loopback, the frame and its two events, recipients with
their tokens, and one runner per way out that returns what reached the recipient."""

import asyncio
import io
import uuid
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import nats
from websockets.asyncio.client import connect

from hub.delivery.agencies import add_agency
from hub.delivery.schemas import AgencyCreate, Subscription
from hub.kit.soap import SOAP_ENV
from hub.media import scan_image
from hub.runtime import Services
from hub.settings import Settings
from tests.egress.frames import FACE, PLATE, PLATE_TEXT, frame
from tests.hub.delivery.harness import Receivers, all_settled, running_worker, wait_until
from tests.hub.feeds.builders import AGENCIES, issue
from tests.hub.media.builders import scan_kit
from tests.support import EdgeNode, ThreadedServer

UNLISTED = "county-archive"  # in the hub's registry, not in the bundle's recipients
OFFICER, OPERATOR = "console-officer", "operator"
FACE_TRACK, PLATE_TRACK = "trk-face-77", "trk-plate-42"
REGISTRY: dict[str, dict[str, Any]] = {
    **AGENCIES,
    UNLISTED: {"jurisdictions": ["north"], "clearance": 3, "purpose": "investigation"},
}


@dataclass
class Seen:
    """What reached the recipient on one way out: raw bodies, JSON items, images."""

    bodies: list[bytes] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    images: list[bytes] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)  # HTTP statuses of refused requests

    @property
    def raw(self) -> bytes:
        """Every byte that reached the recipient."""
        return b"\n".join(self.bodies + self.images)


@dataclass
class World:
    """One cell's hub: settings, services, server, edge node, tokens, receivers."""

    settings: Settings
    services: Services
    server: ThreadedServer
    node: EdgeNode
    tokens_file: Path
    receivers: Receivers
    captured_at: datetime = field(
        default_factory=lambda: (datetime.now(UTC) - timedelta(minutes=10)).replace(
            second=37, microsecond=0
        )
    )
    image: bytes = b""
    sha256: str = ""
    event_ids: list[str] = field(default_factory=list)

    tokens: dict[str, dict[str, str]] = field(default_factory=dict)

    def issue_tokens(self) -> None:
        """A token per recipient, written before the hub first reads the file (it re-reads
        the file at most once a second)."""
        for recipient in (*REGISTRY, OFFICER, OPERATOR):
            self.tokens[recipient] = self._new_token(recipient)

    def token(self, recipient: str) -> dict[str, str]:
        """The bearer header of a recipient."""
        return self.tokens[recipient]

    def _new_token(self, recipient: str) -> dict[str, str]:
        if recipient == OFFICER:
            fields: dict[str, Any] = {
                "roles": ["compliance_officer"],
                "jurisdictions": ["north", "central"],
                "clearance": 3,
            }
        elif recipient == OPERATOR:
            fields = {"roles": ["operator"]}
        else:
            attrs = REGISTRY[recipient]
            fields = {"kind": "client", "roles": ["agency"], "agency": recipient, **attrs}
        token = issue(self.tokens_file, f"{recipient}-{uuid.uuid4().hex[:4]}", **fields)
        return {"Authorization": f"Bearer {token}"}

    def camera(self, recipient: str) -> str:
        """A camera whose jurisdiction the recipient holds."""
        return (
            "demo-cam-2" if recipient in ("transit-authority", "city-analytics") else "demo-cam-1"
        )

    async def register_all(self) -> None:
        """Every agency in the registry (pull ways out; subscriptions no worker serves)."""
        for name in REGISTRY:
            await self.register(name, kind="rest")

    async def register(self, name: str, *, kind: str, config: dict[str, Any] | None = None) -> None:
        """One agency, sending through `kind` to the loopback receivers (or to `config`)."""
        attrs = REGISTRY[name]
        create = AgencyCreate(
            name=name,
            kind=kind,
            config=config or self.receivers.config(kind),
            subscription=Subscription(purpose=attrs["purpose"]),
            jurisdictions=attrs["jurisdictions"],
            clearance=attrs["clearance"],
        )
        await add_agency(self.services.db, self.services.delivery.adapters, create, actor="test")

    def events(self, camera: str) -> list[dict[str, Any]]:
        """Two events referencing the frame: one saw the face, one the plate."""
        media = [{"sha256": self.sha256, "content_type": "image/png"}]
        common = {"camera_id": camera, "captured_at": self.captured_at.isoformat(), "media": media}
        face = {
            "label": "face",
            "confidence": 0.93,
            "box": FACE.box(),
            "track_id": FACE_TRACK,
        }
        plate = {
            "label": "plate",
            "confidence": 0.88,
            "box": PLATE.box(),
            "track_id": PLATE_TRACK,
            "attributes": {"plate_text": PLATE_TEXT},
        }
        made = [
            {"event_id": str(uuid.uuid4()), "model_name": "centerface", "model_version": "1.0",
             "detections": [face], **common},
            {"event_id": str(uuid.uuid4()), "model_name": "rapidocr", "model_version": "1.0",
             "detections": [plate], **common},
        ]  # fmt: skip
        self.event_ids = [e["event_id"] for e in made]
        return made

    async def store(self, camera: str) -> None:
        """Upload the frame, then the two events, signed by the edge node."""
        self.image, self.sha256 = frame()
        await self._post(f"/v1/edge/media/{self.sha256}", self.image, "image/png")
        body = msgspec.json.encode({"events": self.events(camera)})
        answer = await self._post("/v1/edge/events", body, "application/json")
        assert answer["accepted"] == 2, answer
        # The hub's own scan (a worker job in production); release withholds until it ran.
        scanned = await scan_image(
            self.services.db, scan_kit(self.settings.media_dir), sha256=self.sha256
        )
        assert scanned.status == "scanned", scanned

    async def _post(self, path: str, body: bytes, content_type: str) -> Any:
        url = f"{self.server.url}{path}"
        headers = {
            **self.node.signer.sign(method="POST", url=url, body=body),
            "Content-Type": content_type,
        }
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(url, content=body, headers=headers)
        assert response.status_code in (200, 201), response.text
        return response.json()

    async def get(self, path: str, headers: dict[str, str], **params: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.server.url, timeout=30) as http:
            return await http.get(path, headers=headers, params=params)

    async def post(
        self, path: str, headers: dict[str, str], *, json: Any = None, content: bytes | None = None
    ) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.server.url, timeout=60) as http:
            return await http.post(path, headers=headers, json=json, content=content)


Runner = Callable[[World, str], Awaitable[Seen]]


def _push(kind: str) -> Runner:
    async def run(world: World, recipient: str) -> Seen:
        world.receivers.inbox.keep_raw = True
        await world.register(recipient, kind=kind)
        await world.store(world.camera(recipient))
        async with running_worker(world.settings):
            await wait_until(
                lambda: all_settled(world.settings, 2), within=30, what="deliveries settled"
            )
        seen = Seen()
        for item in world.receivers.by_kind(kind):
            seen.bodies.append(item.raw)
            if item.record is not None:
                seen.items.append({"record": item.record})
        return seen

    return run


async def push_jetstream(world: World, recipient: str) -> Seen:
    """Published to a stream of our own on the machine's JetStream server, read back."""
    url, name = "nats://127.0.0.1:4222", f"hubtest_{uuid.uuid4().hex[:12]}"
    client = await nats.connect(url, connect_timeout=2, allow_reconnect=False)
    js = client.jetstream()
    await js.add_stream(name=name, subjects=[f"{name}.>"])
    try:
        config = {"servers": [url], "stream": name, "subject": f"{name}.events"}
        await world.register(recipient, kind="jetstream", config=config)
        await world.store(world.camera(recipient))
        async with running_worker(world.settings):
            await wait_until(lambda: all_settled(world.settings, 2), within=30, what="settled")
        stored = (await js.stream_info(name)).state.messages
        seen = Seen()
        for seq in range(1, stored + 1):
            data = (await js.get_msg(name, seq)).data or b""
            seen.bodies.append(data)
            seen.items.append({"record": msgspec.json.decode(data)["data"]["record"]})
        return seen
    finally:
        await js.delete_stream(name)
        await client.close()


async def feed_rest(world: World, recipient: str) -> Seen:
    await world.register_all()
    await world.store(world.camera(recipient))
    response = await world.get("/v1/feeds/events", world.token(recipient), limit=50)
    return _json_page(response)


def _json_page(response: httpx.Response) -> Seen:
    if response.status_code != 200:
        return Seen(refused=[response.status_code])
    return Seen(bodies=[response.content], items=list(response.json()["items"]))


async def feed_soap(world: World, recipient: str) -> Seen:
    await world.register_all()
    await world.store(world.camera(recipient))
    body = (
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body>'
        '<GetEvents xmlns="urn:hub:feeds:v1"><limit>50</limit></GetEvents>'
        "</soap:Body></soap:Envelope>"
    ).encode()
    headers = {**world.token(recipient), "Content-Type": "text/xml; charset=utf-8"}
    response = await world.post("/soap/feed", headers, content=body)
    if response.status_code != 200:
        return Seen(refused=[response.status_code])
    return Seen(bodies=[response.content])


async def feed_live(world: World, recipient: str) -> Seen:
    await world.register_all()
    seen = Seen()
    url = world.server.url.replace("http://", "ws://") + "/v1/feeds/live"
    async with connect(url, additional_headers=world.token(recipient)) as socket:
        await world.store(world.camera(recipient))
        try:
            while len(seen.bodies) < 2:
                message = await asyncio.wait_for(socket.recv(), 3)
                raw = message.encode() if isinstance(message, str) else message
                seen.bodies.append(raw)
                seen.items.append(msgspec.json.decode(raw))
        except TimeoutError:
            pass
    return seen


async def feed_media(world: World, recipient: str) -> Seen:
    await world.register_all()
    await world.store(world.camera(recipient))
    response = await world.get(f"/v1/feeds/media/{world.sha256}", world.token(recipient))
    if response.status_code != 200:
        return Seen(refused=[response.status_code])
    return Seen(images=[response.content])


async def _incident(world: World, headers: dict[str, str]) -> str:
    await world.register_all()
    await world.store(world.camera(OFFICER))
    made = await world.post("/v1/incidents", headers, json={"title": "matrix"})
    assert made.status_code == 201, made.text
    incident = str(made.json()["id"])
    for event_id in world.event_ids:
        linked = await world.post(
            f"/v1/incidents/{incident}/events", headers, json={"event_id": event_id}
        )
        assert linked.status_code == 201, linked.text
    return incident


async def incident_detail(world: World, recipient: str) -> Seen:
    headers = world.token(recipient)
    incident = await _incident(world, headers)
    response = await world.get(f"/v1/incidents/{incident}", headers)
    assert response.status_code == 200, response.text
    events = response.json()["events"]
    return Seen(bodies=[response.content], items=[e for e in events if e.get("record")])


async def incident_media(world: World, recipient: str) -> Seen:
    headers = world.token(recipient)
    incident = await _incident(world, headers)
    response = await world.get(f"/v1/incidents/{incident}/media/{world.sha256}", headers)
    if response.status_code != 200:
        return Seen(refused=[response.status_code])
    return Seen(images=[response.content])


async def incident_candidates(world: World, recipient: str) -> Seen:
    """The officer browses the stored events (nothing linked yet)."""
    await world.register_all()
    await world.store(world.camera(OFFICER))
    response = await world.get("/v1/incidents/candidates", world.token(recipient))
    assert response.status_code == 200, response.text
    events = response.json()
    return Seen(bodies=[response.content], items=[e for e in events if e.get("record")])


async def incident_candidate_media(world: World, recipient: str) -> Seen:
    await world.register_all()
    await world.store(world.camera(OFFICER))
    path = f"/v1/incidents/candidates/media/{world.sha256}"
    response = await world.get(path, world.token(recipient))
    if response.status_code != 200:
        return Seen(refused=[response.status_code])
    return Seen(images=[response.content])


async def evidence_export(world: World, recipient: str) -> Seen:
    headers = world.token(recipient)
    incident = await _incident(world, headers)
    response = await world.post(f"/v1/incidents/{incident}/export", headers)
    assert response.status_code in (200, 201), response.text
    seen = Seen()
    with zipfile.ZipFile(io.BytesIO(response.content)) as package:
        for name in package.namelist():
            data = package.read(name)
            (seen.images if data[:8] == b"\x89PNG\r\n\x1a\n" else seen.bodies).append(data)
    return seen


async def decision_lookup(world: World, recipient: str) -> Seen:
    """An officer looks up the release decisions an agency read made, and replays one."""
    await world.register_all()
    await world.store(world.camera("police-north"))
    page = await world.get("/v1/feeds/events", world.token("police-north"), limit=50)
    assert page.status_code == 200, page.text
    ids = [item["decision_id"] for item in page.json()["items"]]
    assert ids, "police-north must have been released the events"
    await asyncio.sleep(0.6)  # the decision log writes every 200 ms
    headers, seen = world.token(recipient), Seen()
    for decision_id in ids:
        found = await world.get(f"/v1/decisions/{decision_id}", headers)
        assert found.status_code == 200, found.text
        seen.bodies.append(found.content)
    replayed = await world.post(f"/v1/decisions/{ids[0]}/replay", headers)
    assert replayed.status_code == 200, replayed.text
    listed = await world.get("/v1/decisions", headers, event_id=world.event_ids[1])
    seen.bodies += [replayed.content, listed.content]
    return seen


async def ops_delivery(world: World, recipient: str) -> Seen:
    await world.register("police-north", kind="rest")
    await world.store(world.camera("police-north"))
    rows = await world.services.db.pool.fetch("SELECT id FROM delivery")
    seen = Seen()
    for row in rows:
        response = await world.get(
            f"/v1/ops/deliveries/{row['id']}/preview", world.token(recipient)
        )
        assert response.status_code == 200, response.text
        seen.bodies.append(response.content)
    return seen


RUNNERS: dict[str, Runner] = {
    "push-rest": _push("rest"),
    "push-soap": _push("soap"),
    "push-xml": _push("xml"),
    "push-jetstream": push_jetstream,
    "feed-rest": feed_rest,
    "feed-soap": feed_soap,
    "feed-live": feed_live,
    "feed-media": feed_media,
    "incident-candidates": incident_candidates,
    "incident-candidate-media": incident_candidate_media,
    "incident-detail": incident_detail,
    "incident-media": incident_media,
    "evidence-export": evidence_export,
    "decision-lookup": decision_lookup,
    "ops-delivery": ops_delivery,
}
