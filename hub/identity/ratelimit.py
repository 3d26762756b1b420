"""Rate limits per client and route: GCRA in Redis, one atomic Lua call per request.

The limit is `requests` per `period_seconds` with a burst of `requests` (a client may spend its
whole budget at once, then one request per `period/requests`). Defaults come from settings;
the active policy bundle's data `hub.config.ratelimits` overrides them per route template
(`routes`) and per client (`clients`, keyed like `client:<id>`, `user:<name>`), the client
entry winning. That data is read from the active bundle directly (re-read when the bundle
revision changes), not through a Rego evaluation: a limit is configuration, not a decision,
and a per-request evaluation would also write a decision record per request.

The client is identified only from credentials verified here: a JWT's subject when our keys
signed it, a static token's hash when the tokens file holds it, else the peer address (edge
requests included: a signature's `keyid` is not verified before the limit applies).
Answers carry `RateLimit-Limit/Remaining/Reset`; a refusal is 429 problem+json with
`Retry-After`. If Redis is down the limiter lets requests through (authentication still
fails closed where it needs Redis).
"""

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Protocol

import msgspec
import structlog
from litestar.datastructures import MutableScopeHeaders
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from redis.exceptions import RedisError

from hub.identity.mtls import MtlsConfig
from hub.identity.oauth import AccessTokenVerifier, IdentityKit, looks_like_jwt
from hub.identity.problems import send_problem
from hub.identity.tokens import TokenStore
from hub.kit.clock import utcnow
from hub.kit.db import Database
from hub.kit.errors import HubError
from hub.kit.redis import RedisStore
from hub.policy.bundle import load_bundle_dir, load_bundle_files
from hub.policy.bundles.service import load_active
from hub.settings import Settings

log = structlog.get_logger("hub.identity.ratelimit")

EXEMPT_PATHS = frozenset({"/healthz", "/readyz"})
_KEY_CACHE_LIMIT = 10_000

# GCRA. KEYS[1]: theoretical arrival time (ms). ARGV: emission interval (ms), burst (requests).
# Returns {allowed, remaining, retry_after_ms, reset_ms}. Redis's clock: one clock for all.
GCRA_LUA = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return {0, 0, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.max(1, new_tat - now))
return {1, math.floor((now - allow_at) / interval), 0, new_tat - now}
"""


class Limit(msgspec.Struct, frozen=True, kw_only=True):
    """`requests` per `period_seconds` (the burst is `requests`)."""

    requests: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 600
    period_seconds: Annotated[int, msgspec.Meta(ge=1, le=86_400)] = 60


class LimitTable(msgspec.Struct, frozen=True, kw_only=True):
    """Policy data `hub.config.ratelimits`."""

    default: Limit | None = None
    routes: dict[str, Limit] = {}
    clients: dict[str, Limit] = {}


def choose_limit(table: LimitTable, fallback: Limit, *, route: str, client: str) -> Limit:
    """The client's own limit, else the route's, else the table's default, else settings."""
    return table.clients.get(client) or table.routes.get(route) or table.default or fallback


class Decision(msgspec.Struct, frozen=True):
    """One limiter answer."""

    allowed: bool
    limit: int
    remaining: int
    retry_after_ms: int
    reset_ms: int

    def headers(self) -> dict[str, str]:
        """RateLimit-* response fields (draft-ietf-httpapi-ratelimit-headers), seconds up."""
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(math.ceil(self.reset_ms / 1000)),
        }


async def consume(redis: RedisStore, key: str, limit: Limit) -> Decision:
    """Spend one request of `limit` under `key` (atomic across processes)."""
    interval = max(1, round(limit.period_seconds * 1000 / limit.requests))
    result = await redis.client.eval(  # type: ignore[misc]
        GCRA_LUA, 1, key, str(interval), str(limit.requests)
    )
    allowed, remaining, retry_ms, reset_ms = (int(v) for v in result)
    return Decision(bool(allowed), limit.requests, max(0, remaining), retry_ms, reset_ms)


class LimiterServices(Protocol):
    """What the limiter needs from the process's services."""

    @property
    def settings(self) -> Settings: ...

    @property
    def db(self) -> Database: ...

    @property
    def redis(self) -> RedisStore: ...

    @property
    def identity(self) -> IdentityKit: ...

    @property
    def tokens(self) -> TokenStore: ...


@dataclass
class LimitSource:
    """The rate-limit table of the active policy bundle, re-read when the revision changes."""

    db: Database
    policy_dir: Path
    revision: Callable[[], str | None]
    _seen: str | None = None
    _table: LimitTable | None = None

    async def table(self) -> LimitTable:
        """The current table (empty when the bundle has none or it cannot be read)."""
        revision = self.revision()
        if self._table is None or revision != self._seen:
            self._table, self._seen = await self._read(), revision
        return self._table

    async def _read(self) -> LimitTable:
        try:
            active = await load_active(self.db)
            bundle = load_bundle_files(active[1]) if active else load_bundle_dir(self.policy_dir)
            data = msgspec.json.decode(bundle.data_json)
            raw = data.get("hub", {}).get("config", {}).get("ratelimits", {})
            return msgspec.convert(raw, LimitTable)
        except (HubError, OSError, ValueError, AttributeError, msgspec.ValidationError) as exc:
            log.warning("rate-limit data unreadable; using settings", error=type(exc).__name__)
            return LimitTable()


class ClientKeys:
    """Who is calling, for rate limiting: a verified identity, else the peer address.

    Only credentials checked here count: a bearer JWT whose signature our keys made, or a
    static token the tokens file holds. Anything unverified (a random bearer, a signature's
    `keyid`, a Basic client id) is the peer address, so inventing credentials per request
    buys no new budget. Behind a trusted proxy the peer is the last address the proxy added
    to `X-Forwarded-For`."""

    def __init__(
        self, verifier: AccessTokenVerifier, tokens: TokenStore, *, proxies: MtlsConfig
    ) -> None:
        self._verifier = verifier
        self._tokens = tokens
        self._proxies = proxies
        self._jwt_subjects: dict[str, str] = {}

    async def of(self, scope: Scope, headers: Mapping[str, str]) -> str:
        """`client:<id>`/`user:<name>` for a JWT with a valid signature, `token:<hash>` for
        a known static token, else `ip:<peer>`."""
        scheme, _, token = headers.get("authorization", "").partition(" ")
        token = token.strip()
        verified = None
        if scheme.lower() == "bearer" and token:
            digest = hashlib.sha256(token.encode()).hexdigest()[:24]
            if looks_like_jwt(token):
                verified = await self._jwt_key(token, digest)
            elif self._known_static(token):
                verified = f"token:{digest}"
        return verified or f"ip:{self.peer(scope, headers)}"

    def peer(self, scope: Scope, headers: Mapping[str, str]) -> str:
        """The client address: the direct peer, or what a trusted proxy says it saw."""
        client = scope.get("client")
        direct = client[0] if client else "unknown"
        forwarded = headers.get("x-forwarded-for", "")
        if not forwarded or not self._proxies.trusts(direct):
            return direct
        return forwarded.rsplit(",", 1)[-1].strip()[:64] or direct

    def _known_static(self, token: str) -> bool:
        try:
            self._tokens.subject_for(token, now=utcnow())
        except HubError:
            return False
        return True

    async def _jwt_key(self, token: str, digest: str) -> str | None:
        known = self._jwt_subjects.get(digest)
        if known is not None:
            return known
        try:
            claims = await self._verifier.verify_signature(token)
        except HubError:
            return None  # authentication will refuse it; it is limited by address
        if len(self._jwt_subjects) >= _KEY_CACHE_LIMIT:
            self._jwt_subjects.clear()
        key = self._jwt_subjects[digest] = f"{claims.kind}:{claims.sub}"
        return key


class RateLimitMiddleware:
    """ASGI middleware enforcing the limits (after routing, before guards and handlers)."""

    def __init__(self, app: ASGIApp, *, services: LimiterServices, source: LimitSource) -> None:
        self.app = app
        self.redis = services.redis
        self.settings = services.settings
        self.source = source
        self.keys = ClientKeys(
            services.identity.verifier,
            services.tokens,
            proxies=MtlsConfig.from_settings(services.settings),
        )
        self.fallback = Limit(
            requests=services.settings.ratelimit_requests,
            period_seconds=services.settings.ratelimit_period_seconds,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Spend one request; refuse with 429 when the budget is gone."""
        if str(scope["type"]) != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        decision = await self._decide(scope)
        if decision is None:
            await self.app(scope, receive, send)
            return
        if not decision.allowed:
            retry = max(1, math.ceil(decision.retry_after_ms / 1000))
            await send_problem(
                scope,
                send,
                status=429,
                code="rate_limited",
                title="Too many requests",
                detail=f"rate limit of {decision.limit} requests exceeded; retry in {retry} s",
                headers={**decision.headers(), "Retry-After": str(retry)},
            )
            return
        await self.app(scope, receive, _with_headers(send, decision.headers()))

    async def _decide(self, scope: Scope) -> Decision | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        route = str(scope.get("path_template", scope["path"]))
        try:
            client = await self.keys.of(scope, headers)
            limit = choose_limit(
                await self.source.table(), self.fallback, route=route, client=client
            )
            key = self.redis.key("ratelimit", route, client)
            return await consume(self.redis, key, limit)
        except (RedisError, OSError, HubError) as exc:
            log.warning("rate limiter unavailable; request let through", error=type(exc).__name__)
            return None


def _with_headers(send: Send, fields: dict[str, str]) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableScopeHeaders.from_message(message)
            for name, value in fields.items():
                headers[name] = value
        await send(message)

    return wrapped


def rate_limit_middleware(
    services: LimiterServices, *, revision: Callable[[], str | None]
) -> Callable[[ASGIApp], ASGIApp]:
    """The middleware factory `create_app` adds (a no-op when rate limiting is off)."""
    source = LimitSource(
        db=services.db, policy_dir=Path(services.settings.policy_dir), revision=revision
    )

    def build(app: ASGIApp) -> ASGIApp:
        if not services.settings.ratelimit_enabled:
            return app
        return RateLimitMiddleware(app, services=services, source=source)

    return build
