"""Edge nodes' keys and cameras kept in the process: a revocation refuses the node and a
removal refuses the camera within the stated bound (`NODE_KEY_TTL_SECONDS`), what the registry
does not hold is never kept (an addition is usable at once), replays stay refused."""

import uuid

import pytest

from edge.signing import RequestSigner, generate_key, public_key_pem
from hub.identity import add_camera, remove_camera, revoke_node
from hub.identity.authn import IncomingRequest, authenticate
from hub.identity.keys import parse_public_key
from hub.identity.node_keys import NODE_KEY_TTL_SECONDS, NodeCameras, NodeKeys
from hub.identity.repository import insert_node
from hub.identity.schemas import CameraCreate
from hub.kit.clock import utcnow
from hub.kit.errors import AuthenticationError
from hub.runtime import Services
from tests.support import BASE_URL, TEST_CAMERAS, EdgeNode

pytestmark = [pytest.mark.db, pytest.mark.redis]
URL = f"{BASE_URL}/v1/edge/events"
BODY = b'{"events": []}'


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _request(signer: RequestSigner) -> IncomingRequest:
    headers = signer.sign(method="POST", url=URL, body=BODY)  # a fresh nonce every time

    async def read() -> bytes:
        return BODY

    return IncomingRequest(method="POST", url=URL, headers=headers, read_body=read)


async def test_a_revoked_node_is_refused_once_the_bound_has_passed(
    services: Services, edge_node: EdgeNode
) -> None:
    assert services.identity is not None
    clock = Clock()
    services.identity.node_keys.clock = clock
    await authenticate(services.authn, _request(edge_node.signer))  # looked up, kept

    await revoke_node(services.db, edge_node.node.name, reason="stolen", actor="test")
    clock.now += NODE_KEY_TTL_SECONDS - 0.01
    # Inside the bound the kept key still verifies: this is the documented window.
    await authenticate(services.authn, _request(edge_node.signer))
    clock.now += 0.01
    with pytest.raises(AuthenticationError) as refused:
        await authenticate(services.authn, _request(edge_node.signer))
    assert refused.value.code == "unknown_node"
    # Refused nodes are not kept: every later request asks the registry again.
    assert edge_node.node.id not in services.identity.node_keys._kept


async def test_a_kept_key_still_refuses_a_replayed_signature(
    services: Services, edge_node: EdgeNode
) -> None:
    request = _request(edge_node.signer)
    await authenticate(services.authn, request)
    with pytest.raises(AuthenticationError) as replayed:
        await authenticate(services.authn, request)
    assert replayed.value.code == "signature_replayed"


async def test_a_kept_key_is_answered_without_the_registry_until_it_expires(
    services: Services, edge_node: EdgeNode
) -> None:
    clock = Clock()
    keys = NodeKeys(services.db, ttl_seconds=2.0, clock=clock)
    first = await keys.active_key(edge_node.node.id)
    assert first is not None
    await revoke_node(services.db, edge_node.node.name, reason="lost", actor="test")
    clock.now += 1.99
    assert await keys.active_key(edge_node.node.id) is first  # kept: the registry not asked
    clock.now += 0.01
    assert await keys.active_key(edge_node.node.id) is None


async def test_an_unknown_node_is_looked_up_again_and_usable_once_added(
    services: Services,
) -> None:
    keys = NodeKeys(services.db, clock=Clock())
    node_id = uuid.uuid4()
    assert await keys.active_key(node_id) is None
    raw = parse_public_key(public_key_pem(generate_key()))
    async with services.db.transaction() as conn:
        await insert_node(conn, node_id=node_id, name="late-node", public_key=raw, now=utcnow())
    found = await keys.active_key(node_id)
    assert found is not None
    assert found.public_bytes_raw() == raw


async def test_a_removed_camera_is_refused_once_the_bound_has_passed(
    services: Services, edge_node: EdgeNode
) -> None:
    clock = Clock()
    cameras = NodeCameras(services.db, clock=clock)
    node_id, name = edge_node.node.id, edge_node.node.name
    first = TEST_CAMERAS[0].camera_id
    owned = await cameras.jurisdictions(node_id=node_id, camera_ids=[first, "cam-nobody"])
    assert list(owned) == [first]  # a camera the node does not own is not among them

    await remove_camera(services.db, name, first, actor="test")
    clock.now += NODE_KEY_TTL_SECONDS - 0.01
    # Inside the bound the kept camera still counts: this is the documented window.
    assert first in await cameras.jurisdictions(node_id=node_id, camera_ids=[first])
    clock.now += 0.01
    assert await cameras.jurisdictions(node_id=node_id, camera_ids=[first]) == {}
    assert (node_id, first) not in cameras._kept


async def test_a_camera_added_is_usable_at_once_and_kept_without_the_registry(
    services: Services, edge_node: EdgeNode
) -> None:
    clock = Clock()
    cameras = NodeCameras(services.db, ttl_seconds=2.0, clock=clock)
    node_id, name = edge_node.node.id, edge_node.node.name
    assert await cameras.jurisdictions(node_id=node_id, camera_ids=["cam-late"]) == {}
    await add_camera(
        services.db, name, CameraCreate(camera_id="cam-late", jurisdiction="north"), actor="t"
    )
    # Not found before, so not kept: the next batch asks the registry and finds it.
    assert await cameras.jurisdictions(node_id=node_id, camera_ids=["cam-late"]) == {
        "cam-late": "north"
    }
    await remove_camera(services.db, name, "cam-late", actor="test")
    clock.now += 1.99
    assert await cameras.jurisdictions(node_id=node_id, camera_ids=["cam-late"]) == {
        "cam-late": "north"
    }  # kept: the registry was not asked
    clock.now += 0.01
    assert await cameras.jurisdictions(node_id=node_id, camera_ids=["cam-late"]) == {}
