"""OAuth 2.0 endpoints: `POST /oauth/token`, `POST /oauth/revoke` (RFC 7009) and the JWKS.

They are public to the policy guard (the caller proves itself with the grant) but still rate
limited. Errors are problem+json documents that also carry RFC 6749's `error` member.
"""

import base64
import binascii
from typing import Annotated, Any
from urllib.parse import parse_qsl, unquote

import msgspec
from litestar import Request, Response, Router, delete, get, post
from litestar.params import Parameter

from hub.identity.oauth import service, signin
from hub.identity.oauth.errors import OAuthError
from hub.identity.oauth.kit import IdentityKit
from hub.identity.oauth.schemas import LockoutRead, Revoker
from hub.kit.clock import utcnow
from hub.kit.errors import AuthenticationError
from hub.policy.guard import current_subject

MAX_FORM_BYTES = 8192
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
FORM = "application/x-www-form-urlencoded"


async def _form(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The form parameters; a repeated parameter or a wrong content type is refused."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM:
        raise OAuthError("invalid_request", f"the body must be {FORM}")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise OAuthError("invalid_request", "the request body is too large")
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=False, strict_parsing=False)
    except UnicodeDecodeError:
        raise OAuthError("invalid_request", "the body is not UTF-8") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise OAuthError("invalid_request", f"parameter {name} is repeated")
        form[name] = value
    return form


def _client_credentials(request: Request[Any, Any, Any], form: dict[str, str]) -> tuple[str, str]:
    """client_id and secret from HTTP Basic (RFC 6749 §2.3.1) or the form, never both."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        if "client_secret" in form:
            raise OAuthError("invalid_request", "use one client authentication method")
        try:
            raw = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError("invalid_client", "malformed Basic credentials", status=401) from None
        client_id, sep, secret = raw.partition(":")
        if not sep:
            raise OAuthError("invalid_client", "malformed Basic credentials", status=401)
        return unquote(client_id), unquote(secret)
    if "client_id" in form and "client_secret" in form:
        return form["client_id"], form["client_secret"]
    raise OAuthError("invalid_client", "client authentication is required", status=401)


def _required(form: dict[str, str], name: str) -> str:
    value = form.get(name)
    if not value:
        raise OAuthError("invalid_request", f"parameter {name} is required")
    return value


def _kit(request: Request[Any, Any, Any]) -> IdentityKit:
    """The process's identity collaborators (on the services the app keeps in its state)."""
    kit = getattr(request.app.state["guard_deps"], "identity", None)
    if not isinstance(kit, IdentityKit):
        raise RuntimeError("the app's services carry no IdentityKit")
    return kit


@post("/oauth/token", opt={"public": True}, status_code=200, include_in_schema=True)
async def token(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Issue tokens: client_credentials (agencies), password + totp (console), refresh_token."""
    kit, form = _kit(request), await _form(request)
    grant = form.get("grant_type")
    if grant == "client_credentials":
        client_id, secret = _client_credentials(request, form)
        result = await service.grant_client_credentials(kit, client_id, secret)
    elif grant == "password":
        result = await service.grant_password(
            kit, _required(form, "username"), _required(form, "password"), form.get("totp")
        )
    elif grant == "refresh_token":
        result = await service.grant_refresh(kit, _required(form, "refresh_token"))
    else:
        raise OAuthError("unsupported_grant_type", "grant_type is missing or not supported")
    return Response(
        content=msgspec.json.encode(result), media_type="application/json", headers=_NO_STORE
    )


@post("/oauth/revoke", opt={"public": True}, status_code=200)
async def revoke(request: Request[Any, Any, Any]) -> Response[bytes]:
    """RFC 7009: revoke an access or refresh token issued to the caller; 200 even for an
    unknown token. The caller authenticates as a client (Basic or form secret, RFC 7009
    §2.1) or, for a console user, with a bearer access token of its own."""
    kit, form = _kit(request), await _form(request)
    caller = await _revoker(request, kit, form)
    await service.revoke_token(kit, _required(form, "token"), caller=caller)
    return Response(content=b"", status_code=200, headers=_NO_STORE)


async def _revoker(
    request: Request[Any, Any, Any], kit: IdentityKit, form: dict[str, str]
) -> Revoker:
    """Who is revoking: client credentials first, else a user's own bearer access token."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        try:
            claims = await kit.verifier.verify(value.strip(), now=utcnow())
        except AuthenticationError:
            raise OAuthError("invalid_client", "bearer token not valid", status=401) from None
        return Revoker(kind=claims.kind, name=claims.sub)
    client_id, secret = _client_credentials(request, form)
    client = await service.authenticate_client(kit, client_id, secret)
    return Revoker(kind="client", name=client.client_id)


@get("/.well-known/jwks.json", opt={"public": True})
async def jwks(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The public keys that verify hub access tokens (RFC 7517)."""
    kit = _kit(request)
    await service.ensure_signing_key(kit)
    keys = await kit.verifier.keys.jwks()
    return Response(
        content=msgspec.json.encode(keys),
        media_type="application/jwk-set+json",
        headers={"Cache-Control": "public, max-age=60"},
    )


@get("/v1/admin/identity/lockouts")
async def get_lockouts(request: Request[Any, Any, Any]) -> list[LockoutRead]:
    """Accounts locked now after too many failed sign-ins, the soonest to unlock first."""
    return await signin.list_lockouts(_kit(request))


@delete("/v1/admin/identity/lockouts/{account:str}", status_code=204)
async def delete_lockout(
    request: Request[Any, Any, Any],
    account: Annotated[str, Parameter(max_length=140, description="`user:<name>`")],
) -> None:
    """Lift an account's lock and forget its failed sign-ins (audited)."""
    await signin.unlock_account(_kit(request), account, actor=_actor(request))


def _actor(request: Request[Any, Any, Any]) -> str:
    subject = current_subject(request)
    return f"{subject.kind}:{subject.id}"


def build_router() -> Router:
    """The OAuth token, revocation and JWKS endpoints, and the admin lockout list."""
    return Router(
        path="/",
        route_handlers=[token, revoke, jwks, get_lockouts, delete_lockout],
        tags=["identity"],
    )
