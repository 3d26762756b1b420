"""Who may keep a live socket open: the checks made again while it is open, and the cap.

A WebSocket is authorised once, when it opens, but may stay open for hours. So the socket
keeps what let it in (its credential headers and request) and asks again: every
`feeds_live_recheck_seconds`, at the access token's expiry, and as soon as this process
runs a new policy bundle. It is closed (never left open "until the next message") when the
token expired or was revoked, its client was disabled, its agency was paused or disabled,
policy no longer lets it use the route, or what it may see changed (recipient, purpose or
its agency's subscription: its live audience). A check that cannot be
made (Redis or PostgreSQL away) closes it too: fail closed, the client resumes with its
cursor.

Sockets per subject are capped over every API process with Redis leases (a sorted set per
subject, one member per socket, scored by lease expiry), so a crashed process's sockets
stop counting once their leases run out.
"""

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import cast

import msgspec
from redis.exceptions import RedisError

from hub.delivery.schemas import Agency
from hub.feeds.kit import FeedKit
from hub.feeds.rules import recipient_for
from hub.feeds.service import Reader
from hub.identity.authn import AuthnDeps, IncomingRequest, authenticate
from hub.identity.mtls import ClientCert
from hub.identity.schemas import Subject
from hub.kit.clock import utcnow
from hub.kit.errors import AuthenticationError, HubError
from hub.kit.redis import RedisStore
from hub.policy.schemas import AuthzInput, AuthzResult, RequestInfo

# Private close codes (RFC 6455 4000-4999), mirroring the HTTP status a request would get.
CLOSE_CREDENTIALS = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_CHANGED = 4409
CLOSE_CAP = 4429
CLOSE_TRY_LATER = 1013  # RFC 6455 "Try Again Later"


@dataclass(frozen=True, slots=True)
class Closing:
    """Why a socket must close: its close code, a short reason and the metric label."""

    code: int
    reason: str
    label: str


@dataclass(frozen=True, slots=True)
class LivePass:
    """What let a socket in, kept to ask again: credential headers, request, reader."""

    headers: Mapping[str, str]
    request: RequestInfo
    reader: Reader
    client_cert: ClientCert | None = None


Check = Callable[[], Awaitable[Closing | None]]


async def recheck(kit: FeedKit, authn: AuthnDeps, live: LivePass) -> Closing | None:
    """None while the socket may stay open; otherwise why it must close."""
    try:
        subject = await authenticate(authn, _incoming(live))
        return await _still_allowed(kit, subject, live)
    except AuthenticationError as exc:
        return Closing(CLOSE_CREDENTIALS, _short(f"{exc.code}: {exc.detail}"), "credentials")
    except (HubError, OSError, RedisError) as exc:
        return Closing(CLOSE_TRY_LATER, _short(f"cannot re-check: {exc!r}"), "unavailable")


async def _still_allowed(kit: FeedKit, subject: Subject, live: LivePass) -> Closing | None:
    """Authorisation, agency state and the release view, as at connect time."""
    result, _ = await kit.policy.decide(
        "hub/authz/decision",
        AuthzInput(subject=subject, request=live.request, time=utcnow()),
        result_type=AuthzResult,
        cache_key=msgspec.json.encode((subject, live.request)),
    )
    if not result.allow:
        return Closing(CLOSE_FORBIDDEN, _short(f"policy_denied: {result.reason}"), "forbidden")
    agency = await active_agency(kit, subject.agency)
    if isinstance(agency, Closing):
        return agency
    recipient = recipient_for(
        subject, agency=agency.name, jurisdictions=agency.jurisdictions, clearance=agency.clearance
    )
    purpose = subject.purpose or agency.purpose
    # The subscription is part of the socket's audience (what it is offered): a changed one
    # is a new audience, as for pages, which resolve it per request.
    subscription = await kit.agencies.subscription(agency.name)
    if (recipient, purpose, subscription) != (
        live.reader.recipient,
        live.reader.purpose,
        live.reader.subscription,
    ):
        return Closing(CLOSE_CHANGED, "what this socket may see changed; reconnect", "changed")
    return None


async def agency_refusal(kit: FeedKit, name: str | None) -> Closing | None:
    """Why a socket of this agency may not be open now (unknown, paused, disabled)."""
    found = await active_agency(kit, name)
    return found if isinstance(found, Closing) else None


async def active_agency(kit: FeedKit, name: str | None) -> Agency | Closing:
    """The agency, if it is registered and active; otherwise why a socket must close."""
    agency = await kit.agencies.get(name) if name else None
    if agency is None:
        return Closing(CLOSE_FORBIDDEN, "agency_unknown: no registered agency", "forbidden")
    if agency.status != "active":
        return Closing(CLOSE_FORBIDDEN, f"agency_{agency.status}", "forbidden")
    return agency


async def watch(
    check: Check,
    changed: Callable[[float], Awaitable[None]],
    *,
    every: float,
    deadline: float | None,
    on_pass: Callable[[], Awaitable[None]] | None = None,
) -> Closing:
    """Run `check` every `every` seconds, at `deadline` (loop time) and whenever `changed`
    returns early; return the first reason to close. `on_pass` runs after each pass."""
    loop = asyncio.get_running_loop()
    while True:
        wait = every if deadline is None else max(0.0, min(every, deadline - loop.time()))
        await changed(wait)
        closing = await check()
        if closing is not None:
            return closing
        if on_pass is not None:
            await on_pass()


async def token_deadline(authn: AuthnDeps, headers: Mapping[str, str]) -> float | None:
    """Loop time at which the bearer access token stops being accepted (None: no JWT)."""
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or authn.identity is None or token.strip().count(".") != 2:
        return None
    verifier = authn.identity.verifier
    claims = await verifier.verify_signature(token.strip())
    expires = claims.exp + verifier.policy.leeway_seconds
    left = expires - utcnow().timestamp()
    return asyncio.get_running_loop().time() + max(0.0, left) + 0.05


class SocketLeases:
    """Live sockets per subject over every process: one lease per socket in Redis."""

    # Atomic: drop expired leases, refuse past the cap, else add this socket's lease.
    _TAKE = """
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
    if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
    redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
    redis.call('EXPIRE', KEYS[1], ARGV[5])
    return 1
    """

    def __init__(self, redis: RedisStore, *, cap: int, lease_seconds: float) -> None:
        self._redis = redis
        self.cap = cap
        self._lease = lease_seconds

    def _key(self, actor: str) -> str:
        return self._redis.key("feeds", "live", "sockets", actor)

    async def take(self, actor: str) -> str | None:
        """A lease id for a new socket of `actor`, or None when it holds `cap` already."""
        lease = uuid.uuid4().hex
        now = utcnow().timestamp()
        taken = await cast(
            Awaitable[int],
            self._redis.client.eval(
                self._TAKE,
                1,
                self._key(actor),
                str(now),
                str(now + self._lease),
                str(self.cap),
                lease,
                str(int(self._lease) + 1),
            ),
        )
        return lease if taken else None

    async def renew(self, actor: str, lease: str) -> None:
        """Push the lease's expiry on (called after every passed re-check)."""
        expires = utcnow().timestamp() + self._lease
        await self._redis.client.zadd(self._key(actor), {lease: expires}, xx=True)

    async def give_back(self, actor: str, lease: str) -> None:
        """End a socket's lease (a Redis failure only lets it run out by itself)."""
        try:
            await self._redis.client.zrem(self._key(actor), lease)
        except (RedisError, OSError):
            return


def lease_seconds(recheck_seconds: float) -> float:
    """How long a lease outlives its last renewal: three re-checks, at least 30 s."""
    return max(30.0, 3 * recheck_seconds)


def _incoming(live: LivePass) -> IncomingRequest:
    async def no_body() -> bytes:
        return b""

    return IncomingRequest(
        method="GET",
        url="",
        headers=live.headers,
        read_body=no_body,
        client_cert=live.client_cert,
    )


def _short(text: str) -> str:
    """A close reason fits in a control frame (123 bytes)."""
    return text.encode()[:120].decode(errors="ignore")
