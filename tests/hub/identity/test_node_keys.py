"""Edge nodes' keys kept in the process: a revocation refuses the node within the stated bound
(`NODE_KEY_TTL_SECONDS`), unknown and revoked nodes are never kept, replays stay refused."""

import uuid

import pytest

from edge.signing import RequestSigner, generate_key, public_key_pem
from hub.identity import revoke_node
from hub.identity.authn import IncomingRequest, authenticate
from hub.identity.keys import parse_public_key
from hub.identity.node_keys import NODE_KEY_TTL_SECONDS, NodeKeys
from hub.identity.repository import insert_node
from hub.kit.clock import utcnow
from hub.kit.errors import AuthenticationError
from hub.runtime import Services
from tests.support import BASE_URL, EdgeNode

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
