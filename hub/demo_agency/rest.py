"""The demo agency's REST receiver: Standard Webhooks in, one acknowledgement per message.

It checks what a careful agency would: body size, the webhook signature against any of its
secrets (rotation), the JSON shape, the delivery id, and, when configured, an OAuth2 bearer
token it issued itself from `POST /rest/token` (client credentials). A repeated `webhook-id`
is acknowledged again with the same receipt id (idempotent receiver) and counted by the inbox.
It never echoes a secret, a token or the record in an answer.
"""

import base64
import binascii
import hashlib
import hmac
import secrets
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import msgspec
from litestar import Request, Router, get, post
from litestar.response import Response
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from hub.demo_agency.inbox import Inbox, Received, now
from hub.demo_agency.options import ReceiverOptions

MAX_BODY_BYTES = 1 << 20
MAX_FORM_BYTES = 16 * 1024
MAX_LIVE_TOKENS = 10_000
WEBHOOK_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
TEST_EVENT_TYPE = "hub.test"
# Receipt ids derive from the webhook id, so a repeat gets the same receipt.
RECEIPT_NAMESPACE = uuid.UUID("6f1c9a52-3f0e-4c55-9a43-2f7d0c1e5b17")


class WebhookData(msgspec.Struct, frozen=True, kw_only=True):
    """The part of a delivery's `data` the receiver records."""

    delivery_id: str
    record: dict[str, Any] | None = None


class WebhookBody(msgspec.Struct, frozen=True, kw_only=True):
    """A Standard Webhooks body as the hub sends it."""

    type: str
    timestamp: str
    data: WebhookData


class Ack(msgspec.Struct, frozen=True, kw_only=True):
    """The receiver's answer: its receipt id, and whether it had seen the message before."""

    id: str
    duplicate: bool


class TokenIssuer:
    """Opaque bearer tokens for client-credentials clients, kept in memory until they expire.

    Tokens are stored by their SHA-256, so a lookup's timing says nothing about a token.
    """

    def __init__(self, clients: dict[str, str], *, ttl_seconds: int) -> None:
        self._clients = dict(clients)
        self._ttl = ttl_seconds
        self._live: dict[bytes, float] = {}  # sha256(token) -> monotonic expiry
        self.issued = 0

    def authenticate(self, client_id: str, client_secret: str) -> bool:
        """True when the client is known and the secret matches (constant time)."""
        expected = self._clients.get(client_id)
        # Compare digests, even for unknown ids, so timing reveals neither ids nor lengths.
        reference = hashlib.sha256((expected or secrets.token_hex(16)).encode()).digest()
        given = hashlib.sha256(client_secret.encode()).digest()
        return hmac.compare_digest(reference, given) and expected is not None

    def issue(self) -> str:
        """A new access token, valid for the configured lifetime."""
        self._forget_expired()
        while len(self._live) >= MAX_LIVE_TOKENS:
            self._live.pop(next(iter(self._live)))  # oldest first: dicts keep insertion order
        token = secrets.token_urlsafe(32)
        self._live[_digest(token)] = time.monotonic() + self._ttl
        self.issued += 1
        return token

    def is_valid(self, token: str | None) -> bool:
        """True for a token this issuer gave out that has not expired."""
        if not token:
            return False
        expires = self._live.get(_digest(token))
        return expires is not None and time.monotonic() < expires

    @property
    def ttl_seconds(self) -> int:
        """How long an issued token lives."""
        return self._ttl

    def _forget_expired(self) -> None:
        moment = time.monotonic()
        for key in [key for key, expires in self._live.items() if expires <= moment]:
            del self._live[key]


def router(inbox: Inbox, options: ReceiverOptions) -> Router:
    """`POST /rest/events`, plus `POST /rest/token` when OAuth2 clients are configured."""
    verifiers = [Webhook(secret) for secret in options.webhook_secrets]
    issuer = None
    if options.oauth_clients:
        issuer = TokenIssuer(options.oauth_clients, ttl_seconds=options.oauth_token_ttl_seconds)
    handlers: list[Any] = [_events_handler(inbox, verifiers, issuer)]
    if issuer is not None:
        handlers += _token_handlers(issuer)
    return Router(path="/rest", route_handlers=handlers)


def _events_handler(inbox: Inbox, verifiers: list[Webhook], issuer: TokenIssuer | None) -> Any:
    @post("/events", request_max_body_size=MAX_BODY_BYTES, status_code=200)
    async def receive_event(request: Request[Any, Any, Any]) -> Response[bytes]:
        if issuer is not None and not issuer.is_valid(
            _bearer(request.headers.get("authorization"))
        ):
            inbox.reject()
            return _error(
                401, "invalid_token", {"www-authenticate": 'Bearer error="invalid_token"'}
            )
        body = await request.body()
        headers = {name: request.headers.get(name, "") for name in WEBHOOK_HEADERS}
        if not _signature_ok(verifiers, body, headers):
            inbox.reject()
            return _error(401, "invalid_signature")
        message = _decode(body)
        if message is None or message.data.delivery_id != headers["webhook-id"]:
            inbox.reject()
            return _error(400, "malformed_message")
        return _acknowledge(inbox, message, body)

    return receive_event


def _acknowledge(inbox: Inbox, message: WebhookBody, body: bytes) -> Response[bytes]:
    """Record the message (or fake an injected failure) and answer with the receipt."""
    failure = inbox.take_failure()
    if failure is not None:
        headers = {"retry-after": "1"} if failure in (429, 503) else {}
        return _error(failure, "injected_failure", headers)
    data = message.data
    first = inbox.accept(
        Received(
            kind="rest",
            delivery_id=data.delivery_id,
            event_id=_event_id(data.record),
            record=data.record,
            at=now(),
            test=message.type == TEST_EVENT_TYPE,
        ),
        raw=body,
    )
    receipt = str(uuid.uuid5(RECEIPT_NAMESPACE, data.delivery_id))
    return _json(200, Ack(id=receipt, duplicate=not first))


def _event_id(record: dict[str, Any] | None) -> str | None:
    """The event id, when release policy left it in the record."""
    value = (record or {}).get("event_id")
    return value if isinstance(value, str) else None


def _signature_ok(verifiers: list[Webhook], body: bytes, headers: dict[str, str]) -> bool:
    """True when any accepted secret signed this body (no secrets configured: nothing is)."""
    for verifier in verifiers:
        try:
            verifier.verify(body, headers, json_parse=False)
        # The library lets malformed headers or a non-UTF-8 body escape as ValueError.
        except (WebhookVerificationError, ValueError):
            continue
        return True
    return False


def _decode(body: bytes) -> WebhookBody | None:
    try:
        return msgspec.json.decode(body, type=WebhookBody)
    except msgspec.DecodeError:  # ValidationError is a DecodeError too
        return None


def _token_handlers(issuer: TokenIssuer) -> list[Any]:
    @post("/token", request_max_body_size=MAX_FORM_BYTES, status_code=200)
    async def issue_token(request: Request[Any, Any, Any]) -> Response[bytes]:
        form = _form(await request.body())
        if form is None:
            return _error(400, "invalid_request")
        client = _client_credentials(request.headers.get("authorization"), form)
        if client is None or not issuer.authenticate(*client):
            return _error(401, "invalid_client", {"www-authenticate": 'Basic realm="demo-agency"'})
        if form.get("grant_type") != "client_credentials":
            return _error(400, "unsupported_grant_type")
        answer: dict[str, object] = {
            "access_token": issuer.issue(),
            "token_type": "Bearer",
            "expires_in": issuer.ttl_seconds,
        }
        return _json(200, answer, {"cache-control": "no-store"})

    @get("/token/stats", sync_to_thread=False)
    def token_stats() -> Response[bytes]:
        # For tests and operators: shows whether the hub reuses its tokens.
        return _json(200, {"issued": issuer.issued})

    return [issue_token, token_stats]


def _form(body: bytes) -> dict[str, str] | None:
    """A url-encoded form; None when it is not one (or repeats a field, which RFC 6749 bans)."""
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return None
    form = dict(pairs)
    return form if len(form) == len(pairs) else None


def _client_credentials(authorization: str | None, form: dict[str, str]) -> tuple[str, str] | None:
    """(client_id, client_secret) from HTTP Basic (RFC 6749 2.3.1) or the form body."""
    if authorization and authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        client_id, sep, client_secret = decoded.partition(":")
        # RFC 6749 form-encodes both parts before joining them.
        return (unquote_plus(client_id), unquote_plus(client_secret)) if sep else None
    if "client_id" in form and "client_secret" in form:
        return form["client_id"], form["client_secret"]
    return None


def _bearer(authorization: str | None) -> str | None:
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _json(status: int, content: object, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(
        msgspec.json.encode(content),
        status_code=status,
        media_type="application/json",
        headers=headers or {},
    )


def _error(status: int, code: str, headers: dict[str, str] | None = None) -> Response[bytes]:
    return _json(status, {"error": code}, headers)
