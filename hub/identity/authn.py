"""Authentication: who is calling, from verified credentials only (never the request body).

Credentials: an RFC 9421 signature by a registered, active edge node; a bearer access token
(an ES256 JWT from `/oauth/token`, verified for signature, issuer, audience, times and
revocation); a static bearer token from the tokens file; and, on mTLS routes, the verified
client certificate. A certificate either binds the other credential (its name must be the
subject's) or, alone, names an active OAuth client. The result is a `Subject`, the input of
every policy decision about the request.
"""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from uuid import UUID

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hub.identity.mtls import ClientCert
from hub.identity.oauth import IdentityKit, looks_like_jwt
from hub.identity.oauth.service import client_subject
from hub.identity.repository import find_node_id
from hub.identity.schemas import Subject
from hub.identity.service import active_node_key
from hub.identity.signatures import (
    SignatureError,
    check_metadata,
    key_id_of,
    parse_signature_headers,
    verify_request,
)
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
    identity: IdentityKit | None = None  # OAuth access tokens and certificate-only clients


@dataclass(frozen=True, slots=True)
class IncomingRequest:
    """The parts of a request authentication looks at; the body is read only for signatures."""

    method: str
    url: str
    headers: Mapping[str, str]
    read_body: Callable[[], Awaitable[bytes]]
    client_cert: ClientCert | None = None  # verified by the mTLS middleware


async def authenticate(deps: AuthnDeps, request: IncomingRequest) -> Subject:
    """The subject behind the request's credentials; 401 when there are none or they fail."""
    subject = await _credential_subject(deps, request)
    cert = request.client_cert
    if subject is None and cert is not None:
        subject = None if deps.identity is None else await client_subject(deps.identity, cert.name)
        if subject is None:
            raise AuthenticationError(
                "the client certificate names no active client", code="client_cert_unknown"
            )
    if subject is None:
        raise AuthenticationError(
            "no credentials: sign the request or send a bearer token", code="credentials_missing"
        )
    if cert is not None and not await _cert_matches(cert, subject):
        raise AuthenticationError(
            "the client certificate belongs to another subject", code="client_cert_mismatch"
        )
    return subject


async def _credential_subject(deps: AuthnDeps, request: IncomingRequest) -> Subject | None:
    """The subject of the request's signature or bearer token; None when it carries neither."""
    if "signature-input" in {name.lower() for name in request.headers}:
        node_id = await authenticate_edge(
            deps,
            method=request.method,
            url=request.url,
            headers=request.headers,
            read_body=request.read_body,
        )
        return Subject(id=str(node_id), kind="edge_node", roles=["edge_node"])
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    if looks_like_jwt(token):
        if deps.identity is None:
            raise AuthenticationError("access tokens are not accepted here", code="token_invalid")
        return await deps.identity.verifier.subject(token, now=deps.clock())
    return deps.tokens.subject_for(token, now=deps.clock())


async def _cert_matches(cert: ClientCert, subject: Subject) -> bool:
    """A certificate binds a subject when its name is the subject's id (or node name)."""
    if cert.name == subject.id:
        return True
    if subject.kind == "edge_node":
        return str(await find_node_id(cert.name)) == subject.id
    return False


async def _node_key(deps: AuthnDeps, node_id: UUID) -> Ed25519PublicKey | None:
    """The node's key from the process's cache (kept a few seconds), or the registry."""
    if deps.identity is None:
        return await active_node_key(deps.db, node_id)
    return await deps.identity.node_keys.active_key(node_id)


async def authenticate_edge(
    deps: AuthnDeps,
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    read_body: Callable[[], Awaitable[bytes]],
) -> UUID:
    """The id of the node that signed this request; 401 for anything short of a fresh,
    valid signature by an active node. Needs Redis for the nonce (503 when it is down).

    The body is read last: an unknown node or a stale signature is refused without it."""
    try:
        signed_headers = parse_signature_headers(headers)  # parsed once for every check
        node_id = UUID(key_id_of(signed_headers))
    except SignatureError as exc:
        raise AuthenticationError(exc.detail, code=exc.code) from None
    except ValueError:
        raise AuthenticationError(
            "keyid is not a registered edge node", code="unknown_node"
        ) from None
    key = await _node_key(deps, node_id)
    if key is None:
        log.info("edge request refused", reason="unknown or revoked node", node_id=str(node_id))
        raise AuthenticationError("keyid is not an active edge node", code="unknown_node")
    try:
        check_metadata(signed_headers, now=deps.clock(), max_skew_seconds=deps.max_skew_seconds)
        body = await read_body()
        signed = verify_request(
            method=method,
            url=url,
            headers=signed_headers,
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
