"""The identity collaborators one process keeps: sealer, key ring, revocations, issuer, the
sign-in throttle and the edge nodes' keys."""

from dataclasses import dataclass, field
from pathlib import Path

from hub.audit import AuditAppender
from hub.identity.node_keys import NodeCameras, NodeKeys
from hub.identity.oauth.access import (
    AccessTokenIssuer,
    AccessTokenVerifier,
    KeyRing,
    Revocations,
    TokenPolicy,
)
from hub.identity.oauth.crypto import Sealer
from hub.identity.oauth.lockout import SigninThrottle
from hub.kit.db import Database
from hub.kit.offload import Offloader
from hub.kit.redis import RedisStore
from hub.settings import Settings


def password_hasher() -> Offloader:
    """The bounded pool every argon2 hash and verification of one process runs in."""
    return Offloader("password-hashing", workers=2, queue=8, budget_seconds=10.0)


@dataclass(frozen=True, slots=True)
class IdentityKit:
    """Built once per process; its caches (keys, revocations) are what make it worth sharing."""

    db: Database
    redis: RedisStore
    policy: TokenPolicy
    refresh_ttl_seconds: int
    sealer: Sealer
    verifier: AccessTokenVerifier
    issuer: AccessTokenIssuer
    throttle: SigninThrottle
    # Edge nodes' verification keys: no registry round trip per signed request (ADR 0024).
    node_keys: NodeKeys
    # ... and the cameras each node owns: no registry round trip per batch either.
    node_cameras: NodeCameras
    # Audit entries with no transaction of their own (lockouts, revocations) share commits.
    audit: AuditAppender
    # argon2id costs 64 MiB and a core for ~0.1-0.6 s: at most two at once per process, a
    # short queue, then 503 (96 parallel bogus logins made a real one wait 15 s).
    hasher: Offloader = field(default_factory=password_hasher)

    @classmethod
    def build(
        cls, settings: Settings, db: Database, redis: RedisStore, *, audit: AuditAppender
    ) -> "IdentityKit":
        """Collaborators for these settings (nothing is read or connected yet); `audit` is the
        process's appender, closed by whoever made it."""
        policy = TokenPolicy(
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_seconds=settings.access_token_ttl_seconds,
            leeway_seconds=settings.jwt_leeway_seconds,
        )
        sealer = Sealer(Path(settings.secrets_dir))
        revocations = Revocations(
            redis, ttl_seconds=settings.access_token_ttl_seconds + settings.jwt_leeway_seconds
        )
        return cls(
            db=db,
            redis=redis,
            policy=policy,
            refresh_ttl_seconds=settings.refresh_token_ttl_seconds,
            sealer=sealer,
            verifier=AccessTokenVerifier(policy, KeyRing(db), revocations),
            issuer=AccessTokenIssuer(policy, db, sealer),
            throttle=SigninThrottle(redis),
            node_keys=NodeKeys(db),
            node_cameras=NodeCameras(db),
            audit=audit,
        )
