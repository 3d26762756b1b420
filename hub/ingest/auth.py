"""Authenticating edge requests: RFC 9421 signature by a registered, active node, once."""

from collections.abc import Mapping
from uuid import UUID

import structlog

from hub.identity import active_node_key
from hub.ingest.signatures import SignatureError, read_key_id, verify_request
from hub.kit.clock import utcnow
from hub.kit.errors import AuthenticationError
from hub.runtime import Services

log = structlog.get_logger("hub.ingest.auth")


async def authenticate_edge(
    services: Services, *, method: str, url: str, headers: Mapping[str, str], body: bytes
) -> UUID:
    """The id of the node that signed this request; 401 for anything short of a fresh,
    valid signature by an active node. Needs Redis for the nonce (503 when it is down)."""
    try:
        node_id = UUID(read_key_id(headers))
    except SignatureError as exc:
        raise AuthenticationError(exc.detail, code=exc.code) from None
    except ValueError:
        raise AuthenticationError(
            "keyid is not a registered edge node", code="unknown_node"
        ) from None
    key = await active_node_key(services.db, node_id)
    if key is None:
        log.info("edge request refused", reason="unknown or revoked node", node_id=str(node_id))
        raise AuthenticationError("keyid is not an active edge node", code="unknown_node")
    skew = services.settings.signature_max_skew_seconds
    try:
        signed = verify_request(
            method=method,
            url=url,
            headers=headers,
            body=body,
            public_key=key,
            now=utcnow(),
            max_skew_seconds=skew,
        )
    except SignatureError as exc:
        log.info("edge request refused", reason=exc.code, node_id=str(node_id))
        raise AuthenticationError(exc.detail, code=exc.code) from None
    # The nonce must outlive the whole window in which `created` would still be accepted.
    nonce_key = services.redis.key("nonce", str(node_id), signed.nonce)
    if not await services.redis.claim_once(nonce_key, ttl_seconds=2 * skew + 1):
        raise AuthenticationError(
            "this signature nonce was already used", code="signature_replayed"
        )
    return node_id
