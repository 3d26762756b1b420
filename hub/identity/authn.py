"""Authentication: who is calling, from verified credentials only (never the request body).

Two kinds of credentials today: an RFC 9421 signature by a registered, active edge node, and
a bearer token from the tokens file. The result is a `Subject`, the input of every policy
decision about the request.
"""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from uuid import UUID

import structlog

from hub.identity.schemas import Subject
from hub.identity.service import active_node_key
from hub.identity.signatures import SignatureError, read_key_id, verify_request
from hub.identity.tokens import TokenStore
from hub.kit.clock import Clock, utcnow
from hub.kit.db import Database
from hub.kit.errors import AuthenticationError
from hub.kit.redis import RedisStore

log = structlog.get_logger("hub.identity.authn")


@dataclass(frozen=True, slots=True)
class AuthnDeps:
    """What authentication needs: the node registry, Redis for nonces, the token file."""

    db: Database
    redis: RedisStore
    tokens: TokenStore
    max_skew_seconds: int
    clock: Clock = utcnow


@dataclass(frozen=True, slots=True)
class IncomingRequest:
    """The parts of a request authentication looks at; the body is read only for signatures."""

    method: str
    url: str
    headers: Mapping[str, str]
    read_body: Callable[[], Awaitable[bytes]]


async def authenticate(deps: AuthnDeps, request: IncomingRequest) -> Subject:
    """The subject behind the request's credentials; 401 when there are none or they fail."""
    if "signature-input" in {name.lower() for name in request.headers}:
        body = await request.read_body()
        node_id = await authenticate_edge(
            deps, method=request.method, url=request.url, headers=request.headers, body=body
        )
        return Subject(id=str(node_id), kind="edge_node", roles=["edge_node"])
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return deps.tokens.subject_for(token.strip(), now=deps.clock())
    raise AuthenticationError(
        "no credentials: sign the request or send a bearer token", code="credentials_missing"
    )


async def authenticate_edge(
    deps: AuthnDeps, *, method: str, url: str, headers: Mapping[str, str], body: bytes
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
    key = await active_node_key(deps.db, node_id)
    if key is None:
        log.info("edge request refused", reason="unknown or revoked node", node_id=str(node_id))
        raise AuthenticationError("keyid is not an active edge node", code="unknown_node")
    try:
        signed = verify_request(
            method=method,
            url=url,
            headers=headers,
            body=body,
            public_key=key,
            now=deps.clock(),
            max_skew_seconds=deps.max_skew_seconds,
        )
    except SignatureError as exc:
        log.info("edge request refused", reason=exc.code, node_id=str(node_id))
        raise AuthenticationError(exc.detail, code=exc.code) from None
    # The nonce must outlive the whole window in which `created` would still be accepted.
    nonce_key = deps.redis.key("nonce", str(node_id), signed.nonce)
    if not await deps.redis.claim_once(nonce_key, ttl_seconds=2 * deps.max_skew_seconds + 1):
        raise AuthenticationError(
            "this signature nonce was already used", code="signature_replayed"
        )
    return node_id
