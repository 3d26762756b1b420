"""Edge authentication reads the body last: unknown nodes and stale signatures never cost it."""

import uuid
from datetime import timedelta

import pytest

from edge.signing import RequestSigner, generate_key
from hub.identity.authn import IncomingRequest, authenticate
from hub.kit.clock import utcnow
from hub.kit.errors import AuthenticationError
from hub.runtime import Services
from tests.support import BASE_URL, EdgeNode

pytestmark = [pytest.mark.db, pytest.mark.redis]
PATH = "/v1/edge/events"
BODY = b'{"events": []}'


class Body:
    """A request body that records whether anyone read it."""

    def __init__(self) -> None:
        self.reads = 0

    async def read(self) -> bytes:
        self.reads += 1
        return BODY


def _request(signer: RequestSigner, body: Body, **sign: object) -> IncomingRequest:
    url = f"{BASE_URL}{PATH}"
    headers = signer.sign(method="POST", url=url, body=BODY, **sign)  # type: ignore[arg-type]
    return IncomingRequest(method="POST", url=url, headers=headers, read_body=body.read)


async def test_an_unknown_node_is_refused_without_reading_the_body(services: Services) -> None:
    body = Body()
    stranger = RequestSigner(key_id=str(uuid.uuid4()), private_key=generate_key())
    with pytest.raises(AuthenticationError) as refused:
        await authenticate(services.authn, _request(stranger, body))
    assert refused.value.code == "unknown_node"
    assert body.reads == 0


async def test_a_stale_signature_is_refused_without_reading_the_body(
    services: Services, edge_node: EdgeNode
) -> None:
    body = Body()
    old = utcnow() - timedelta(hours=1)
    with pytest.raises(AuthenticationError) as refused:
        await authenticate(services.authn, _request(edge_node.signer, body, created=old))
    assert refused.value.code == "signature_expired"
    assert body.reads == 0


async def test_a_valid_signature_reads_the_body_once(
    services: Services, edge_node: EdgeNode
) -> None:
    body = Body()
    subject = await authenticate(services.authn, _request(edge_node.signer, body))
    assert (subject.kind, subject.id, body.reads) == ("edge_node", str(edge_node.node.id), 1)
