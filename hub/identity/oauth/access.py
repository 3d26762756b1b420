"""Access tokens: ES256 JWTs signed by the newest signing key, verified against every key still
in its overlap window, refused once revoked (by jti or by subject) on every process.

Revocations live in Redis with a TTL of one token lifetime (a revoked token would have expired
by then anyway); each process caches a lookup for at most `REVOCATION_CACHE_SECONDS`, so a
revocation reaches every process within about a second. Without Redis a token is refused
(503): revocation cannot be checked, so the hub fails closed.
"""

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from redis.exceptions import RedisError

from hub.identity.oauth import repository
from hub.identity.oauth.crypto import Sealer
from hub.identity.oauth.schemas import AccessClaims, Grantee
from hub.identity.schemas import Subject
from hub.kit.clock import Clock, utcnow
from hub.kit.db import Database
from hub.kit.errors import AuthenticationError, UnavailableError
from hub.kit.redis import RedisStore

ALGORITHM = "ES256"
MAX_TOKEN_LENGTH = 8192
REVOCATION_CACHE_SECONDS = 1.0
KEYS_REFRESH_SECONDS = 30.0
SIGNING_KEY_CACHE_SECONDS = 10.0
_UNKNOWN_KID_RELOAD_SECONDS = 1.0
_CACHE_LIMIT = 50_000


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    """Issuer, audience, lifetimes and leeway of access tokens (from settings)."""

    issuer: str
    audience: str
    ttl_seconds: int
    leeway_seconds: int

    @property
    def overlap(self) -> timedelta:
        """How long a retired key keeps verifying: a token's life plus every cache delay."""
        return timedelta(
            seconds=self.ttl_seconds + self.leeway_seconds + SIGNING_KEY_CACHE_SECONDS + 60
        )


def token_error(code: str, detail: str) -> AuthenticationError:
    """A 401 for a bearer JWT with a stable code."""
    return AuthenticationError(detail, code=code)


def looks_like_jwt(token: str) -> bool:
    """A compact JWS has three dot-separated parts; static tokens never contain a dot."""
    return token.count(".") == 2


class KeyRing:
    """Verification keys by kid, re-read from PostgreSQL every 30 s and on an unknown kid."""

    def __init__(self, db: Database, *, clock: Clock = utcnow) -> None:
        self._db = db
        self._clock = clock
        self._keys: dict[str, ECKey] = {}
        self._loaded = float("-inf")

    async def get(self, kid: str) -> ECKey | None:
        """The public key for `kid`, or None when no key in its overlap window has it."""
        now = time.monotonic()
        stale = now - self._loaded >= KEYS_REFRESH_SECONDS
        unknown = kid not in self._keys and now - self._loaded >= _UNKNOWN_KID_RELOAD_SECONDS
        if stale or unknown:
            await self.reload()
        return self._keys.get(kid)

    async def reload(self) -> None:
        """Read the keys that may verify right now."""
        rows = await repository.verifying_keys(self._db.pool, now=self._clock())
        self._keys = {kid: ECKey.import_key(_jwk(jwk)) for kid, jwk in rows}
        self._loaded = time.monotonic()

    async def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public JWK set (RFC 7517) of every verifying key."""
        rows = await repository.verifying_keys(self._db.pool, now=self._clock())
        return {"keys": [{**jwk, "kid": kid, "use": "sig", "alg": ALGORITHM} for kid, jwk in rows]}


class Revocations:
    """Revoked jtis and subjects in Redis, with a per-process cache of at most ~1 s."""

    def __init__(self, redis: RedisStore, *, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, bool]] = {}

    def _keys(self, claims: AccessClaims) -> list[str]:
        keys = [
            self._redis.key("revoked", "jti", claims.jti),
            self._redis.key("revoked", "sub", claims.kind, claims.sub),
        ]
        if claims.sid is not None:
            keys.append(self._redis.key("revoked", "session", claims.sid))
        return keys

    async def revoke_jti(self, jti: str, *, expires_in: int) -> None:
        """Refuse this token id until it would have expired anyway."""
        self._cache.pop(jti, None)
        await self._set(self._redis.key("revoked", "jti", jti), b"1", max(1, expires_in))

    async def revoke_subject(self, kind: str, sub: str, *, at: datetime) -> None:
        """Refuse every token of this subject issued at or before `at`."""
        self._cache.clear()
        key = self._redis.key("revoked", "sub", kind, sub)
        await self._set(key, str(int(at.timestamp())).encode(), self._ttl + 60)

    async def revoke_session(self, sid: str) -> None:
        """Refuse every access token of one login (a refresh-token family), e.g. on reuse."""
        self._cache.clear()  # this process knows at once; others within the cache time
        await self._set(self._redis.key("revoked", "session", sid), b"1", self._ttl + 60)

    async def is_revoked(self, claims: AccessClaims) -> bool:
        """True when the token's jti, its login (sid) or its subject (for tokens issued
        before) was revoked."""
        now = time.monotonic()
        cached = self._cache.get(claims.jti)
        if cached is not None and now - cached[0] < REVOCATION_CACHE_SECONDS:
            return cached[1]
        try:
            by_jti, by_sub, *by_session = await self._redis.client.mget(self._keys(claims))
        except (RedisError, OSError) as exc:
            raise UnavailableError(f"Redis: {type(exc).__name__}", retry_after=5) from exc
        revoked = (
            by_jti is not None
            or (by_sub is not None and claims.iat <= int(by_sub))
            or any(v is not None for v in by_session)
        )
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[claims.jti] = (now, revoked)
        return revoked

    async def _set(self, key: str, value: bytes, ttl: int) -> None:
        try:
            await self._redis.client.set(key, value, ex=ttl)
        except (RedisError, OSError) as exc:
            raise UnavailableError(f"Redis: {type(exc).__name__}", retry_after=5) from exc


class AccessTokenVerifier:
    """Turns a bearer JWT into a `Subject`, or a 401 with a stable code."""

    def __init__(self, policy: TokenPolicy, keys: KeyRing, revocations: Revocations) -> None:
        self.policy = policy
        self.keys = keys
        self.revocations = revocations

    async def verify(self, token: str, *, now: datetime, check_expiry: bool = True) -> AccessClaims:
        """Signature, issuer, audience, times and revocation; returns the claims."""
        claims = await self.verify_signature(token)
        self._check_claims(claims, now=now, check_expiry=check_expiry)
        if await self.revocations.is_revoked(claims):
            raise token_error("token_revoked", "access token has been revoked")
        return claims

    async def subject(self, token: str, *, now: datetime) -> Subject:
        """The subject an access token stands for (roles and attributes from the token only)."""
        claims = await self.verify(token, now=now)
        return Subject(
            id=claims.sub,
            kind=claims.kind,
            roles=claims.roles,
            agency=claims.agency,
            jurisdictions=claims.jurisdictions,
            clearance=claims.clearance,
            purpose=claims.purpose,
        )

    async def verify_signature(self, token: str) -> AccessClaims:
        """The claims of a token our keys signed (nothing about time or revocation yet)."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise token_error("token_invalid", "access token is too long")
        header = _header(token)
        kid = header.get("kid")
        if header.get("alg") != ALGORITHM or not isinstance(kid, str):
            raise token_error("token_invalid", "access token must be ES256 with a kid")
        key = await self.keys.get(kid)
        if key is None:
            raise token_error("token_key_unknown", "access token signed by an unknown key")
        try:
            decoded = jwt.decode(token, key, algorithms=[ALGORITHM])
        except JoseError:
            raise token_error(
                "token_signature_invalid", "access token signature is invalid"
            ) from None
        try:
            return msgspec.convert(decoded.claims, AccessClaims)
        except msgspec.ValidationError as exc:
            raise token_error("token_invalid", f"access token claims: {exc}") from None

    def _check_claims(self, claims: AccessClaims, *, now: datetime, check_expiry: bool) -> None:
        audiences = [claims.aud] if isinstance(claims.aud, str) else claims.aud
        if claims.iss != self.policy.issuer or self.policy.audience not in audiences:
            raise token_error("token_invalid", "access token is for another issuer or audience")
        stamp, leeway = int(now.timestamp()), self.policy.leeway_seconds
        if check_expiry and claims.exp + leeway <= stamp:
            raise token_error("token_expired", "access token has expired")
        if claims.nbf is not None and claims.nbf - leeway > stamp:
            raise token_error("token_not_yet_valid", "access token is not valid yet")


def _jwk(value: dict[str, str]) -> dict[str, str | list[str]]:
    return dict(value)


def _header(token: str) -> Mapping[str, Any]:
    try:
        header: Mapping[str, Any] = jws.extract_compact(token.encode()).headers()
    except (JoseError, ValueError, TypeError):
        raise token_error("token_invalid", "bearer token is not a well-formed JWT") from None
    return header


class AccessTokenIssuer:
    """Signs access tokens with the newest signing key (created on first use)."""

    def __init__(self, policy: TokenPolicy, db: Database, sealer: Sealer) -> None:
        self.policy = policy
        self._db = db
        self._sealer = sealer
        self._key: tuple[float, str, ECKey] | None = None

    async def issue(
        self, grantee: Grantee, *, now: datetime, session: str | None = None
    ) -> tuple[str, AccessClaims]:
        """A signed access token for `grantee`, and its claims; `session` names the login
        (refresh-token family) it belongs to, so revoking the login refuses it too."""
        kid, key = await self._signing_key()
        stamp = int(now.timestamp())
        claims = AccessClaims(
            iss=self.policy.issuer,
            aud=self.policy.audience,
            sub=grantee.sub,
            exp=stamp + self.policy.ttl_seconds,
            iat=stamp,
            nbf=stamp,
            jti=uuid.uuid4().hex,
            kind=grantee.kind,
            roles=grantee.roles,
            agency=grantee.agency,
            jurisdictions=grantee.jurisdictions,
            clearance=grantee.clearance,
            purpose=grantee.purpose,
            sid=session,
        )
        token = jwt.encode(
            {"alg": ALGORITHM, "kid": kid, "typ": "at+jwt"},
            msgspec.to_builtins(claims),
            key,
            algorithms=[ALGORITHM],
        )
        return token, claims

    def forget_key(self) -> None:
        """Drop the cached signing key (after a rotation in this process)."""
        self._key = None

    async def _signing_key(self) -> tuple[str, ECKey]:
        cached = self._key
        if cached is not None and time.monotonic() - cached[0] < SIGNING_KEY_CACHE_SECONDS:
            return cached[1], cached[2]
        found = await repository.signing_key(self._db.pool)
        if found is None:
            found = await create_first_key(self._db, self._sealer)
        kid, sealed = found
        private: dict[str, str | list[str]] = msgspec.json.decode(
            self._sealer.open(sealed, context=kid), type=dict[str, str]
        )
        key = ECKey.import_key(private)
        self._key = (time.monotonic(), kid, key)
        return kid, key


def new_key_material(sealer: Sealer) -> tuple[str, dict[str, str], bytes]:
    """A fresh P-256 key: its kid (RFC 7638 thumbprint), public JWK and sealed private JWK."""
    key = ECKey.generate_key("P-256", auto_kid=True)
    kid = str(key.kid)
    public = {k: str(v) for k, v in key.as_dict(private=False).items() if k != "kid"}
    private = msgspec.json.encode(key.as_dict(private=True))
    return kid, public, sealer.seal(private, context=kid)


async def create_first_key(
    db: Database, sealer: Sealer, *, clock: Clock = utcnow
) -> tuple[str, bytes]:
    """Create the first signing key unless another process just did; returns the signing key."""
    async with db.transaction() as conn:
        await repository.lock_keys(conn)
        found = await repository.signing_key(conn)
        if found is not None:
            return found
        kid, public, sealed = new_key_material(sealer)
        await repository.insert_key(conn, kid=kid, public_jwk=public, sealed=sealed, now=clock())
    return kid, sealed
