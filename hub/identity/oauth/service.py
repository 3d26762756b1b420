"""Use cases of OAuth clients, console users, token grants, revocation and signing keys.

Each opens its own transaction; every token issued or revoked and every admin action on an
account or key writes an audit entry in that transaction. Secrets never reach the log or the
audit trail (only ids, jtis and key ids do).
"""

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Literal, TypeVar
from uuid import UUID, uuid4

import asyncpg
import pyotp

from hub.audit import AuditEntry, append_entry
from hub.audit.schemas import Detail
from hub.identity.oauth import repository
from hub.identity.oauth.access import create_first_key, looks_like_jwt, new_key_material
from hub.identity.oauth.crypto import hash_secret, new_secret, token_digest, verify_secret
from hub.identity.oauth.errors import OAuthError
from hub.identity.oauth.kit import IdentityKit
from hub.identity.oauth.schemas import (
    ClientCreate,
    ClientCreated,
    ClientRead,
    Grantee,
    Revoker,
    SigningKeyRead,
    TokenResponse,
    UserCreate,
    UserCreated,
    UserRead,
)
from hub.identity.oauth.signin import sign_in
from hub.identity.schemas import Subject
from hub.kit.clock import Clock, utcnow
from hub.kit.errors import AuthenticationError, ConflictError, NotFoundError

CLIENT_SECRET_PREFIX = "hubcs_"  # noqa: S105 (a prefix, not a secret)
REFRESH_PREFIX = "hubrt_"
TOTP_ISSUER = "hub"
MFA_ROLES = frozenset({"admin"})


async def _audit(
    conn: asyncpg.Connection, *, actor: str, action: str, target: str, detail: Detail, clock: Clock
) -> None:
    await append_entry(
        conn, AuditEntry(actor=actor, action=action, target=target, detail=detail), clock=clock
    )


async def _audit_alone(
    kit: IdentityKit, *, actor: str, action: str, target: str, detail: Detail, clock: Clock
) -> None:
    """An entry with nothing to commit beside it (the action lives in Redis or was committed
    already): the process's appender shares a commit with concurrent ones (ADR 0025)."""
    await kit.audit.append(
        AuditEntry(actor=actor, action=action, target=target, detail=detail), at=clock()
    )


async def add_client(
    kit: IdentityKit, create: ClientCreate, *, actor: str, clock: Clock = utcnow
) -> ClientCreated:
    """Register an agency client; its secret is returned here and never again."""
    secret = new_secret(CLIENT_SECRET_PREFIX)
    hashed = await kit.hasher.run(hash_secret, secret)
    async with kit.db.transaction() as conn:
        client = await repository.insert_client(conn, create, secret_hash=hashed, now=clock())
        if client is None:
            raise ConflictError(f"client {create.client_id!r} exists", code="client_exists")
        detail: Detail = {"roles": [str(r) for r in client.roles], "agency": client.agency}
        await _audit(
            conn,
            actor=actor,
            action="client.add",
            target=f"client:{client.client_id}",
            detail=detail,
            clock=clock,
        )
    return ClientCreated(client=client, client_secret=secret)


async def list_clients(kit: IdentityKit) -> list[ClientRead]:
    """Every registered client."""
    return await repository.select_clients(kit.db.pool)


async def revoke_client(
    kit: IdentityKit, client_id: str, *, actor: str, clock: Clock = utcnow
) -> ClientRead:
    """Revoke a client: no new tokens, and its live tokens are refused within seconds."""
    return await _shut_off(
        kit, "client", client_id, repository.revoke_client, action="client.revoke",
        actor=actor, clock=clock,
    )  # fmt: skip


async def add_user(
    kit: IdentityKit, create: UserCreate, *, actor: str, clock: Clock = utcnow
) -> UserCreated:
    """Register a console user; admins always get TOTP. The provisioning URI is shown once."""
    with_totp = create.totp or bool(MFA_ROLES & set(create.roles))
    secret = pyotp.random_base32() if with_totp else None
    sealed = None if secret is None else kit.sealer.seal(secret.encode(), context=create.username)
    hashed = await kit.hasher.run(hash_secret, create.password)
    async with kit.db.transaction() as conn:
        user = await repository.insert_user(
            conn, create, password_hash=hashed, totp_sealed=sealed, now=clock()
        )
        if user is None:
            raise ConflictError(f"user {create.username!r} exists", code="user_exists")
        await _audit(
            conn,
            actor=actor,
            action="user.add",
            target=f"user:{user.username}",
            detail={"roles": [str(r) for r in user.roles], "totp": user.totp},
            clock=clock,
        )
    uri = (
        None
        if secret is None
        else pyotp.TOTP(secret).provisioning_uri(name=create.username, issuer_name=TOTP_ISSUER)
    )
    return UserCreated(user=user, totp_uri=uri)


async def set_user_scope(
    kit: IdentityKit,
    username: str,
    *,
    jurisdictions: list[str],
    clearance: int,
    actor: str,
    clock: Clock = utcnow,
) -> UserRead:
    """Set what a user may see (jurisdictions, clearance), audited with the before and after;
    tokens already issued keep their claims until they are refreshed or expire."""
    async with kit.db.transaction() as conn:
        changed = await repository.set_user_scope(
            conn, username, jurisdictions=jurisdictions, clearance=clearance
        )
        if changed is None:
            raise NotFoundError(f"no user {username!r}", code="user_not_found")
        before, after = changed
        await _audit(
            conn,
            actor=actor,
            action="user.scope",
            target=f"user:{username}",
            detail={
                "jurisdictions": after.jurisdictions,
                "clearance": after.clearance,
                "previous_jurisdictions": before.jurisdictions,
                "previous_clearance": before.clearance,
            },
            clock=clock,
        )
    return after


async def list_users(kit: IdentityKit) -> list[UserRead]:
    """Every console user."""
    return await repository.select_users(kit.db.pool)


async def disable_user(
    kit: IdentityKit, username: str, *, actor: str, clock: Clock = utcnow
) -> UserRead:
    """Disable a user: refresh tokens revoked, live access tokens refused within seconds."""
    return await _shut_off(
        kit, "user", username, repository.disable_user, action="user.disable",
        actor=actor, clock=clock,
    )  # fmt: skip


R = TypeVar("R")


async def _shut_off(
    kit: IdentityKit,
    kind: Literal["client", "user"],
    name: str,
    update: Callable[..., Awaitable[R | None]],
    *,
    action: str,
    actor: str,
    clock: Clock,
) -> R:
    """Mark a client or user unusable, audit it, and refuse its live tokens everywhere."""
    now = clock()
    async with kit.db.transaction() as conn:
        found = await update(conn, name, now=now)
        if found is None:
            raise NotFoundError(f"no {kind} {name!r}", code=f"{kind}_not_found")
        await _audit(
            conn, actor=actor, action=action, target=f"{kind}:{name}", detail={}, clock=clock
        )
    await kit.verifier.revocations.revoke_subject(kind, name, at=now)
    return found


async def authenticate_client(kit: IdentityKit, client_id: str, secret: str) -> ClientRead:
    """The active client these credentials prove (RFC 6749 §2.3), else 401 invalid_client."""
    found = await repository.find_client(kit.db.pool, client_id)
    ok = await kit.hasher.run(verify_secret, None if found is None else found[0], secret)
    if found is None or not ok or found[1].status != "active":
        raise OAuthError("invalid_client", "client authentication failed", status=401)
    return found[1]


async def grant_client_credentials(
    kit: IdentityKit, client_id: str, secret: str, *, clock: Clock = utcnow
) -> TokenResponse:
    """RFC 6749 §4.4: an access token for an active client with the right secret."""
    client = await authenticate_client(kit, client_id, secret)
    grantee = Grantee(
        sub=client.client_id,
        kind="client",
        roles=client.roles,
        agency=client.agency,
        jurisdictions=client.jurisdictions,
        clearance=client.clearance,
        purpose=client.purpose,
    )
    return await _issue(kit, grantee, grant="client_credentials", refresh=None, clock=clock)


async def grant_password(
    kit: IdentityKit, username: str, password: str, totp: str | None, *, clock: Clock = utcnow
) -> TokenResponse:
    """RFC 6749 §4.3 plus TOTP: access and refresh tokens for an active console user."""
    user = await sign_in(kit, username, password, totp, clock=clock)
    refresh = new_secret(REFRESH_PREFIX)
    return await _issue(
        kit, _user_grantee(user), grant="password", refresh=(refresh, uuid4()), clock=clock
    )


def _user_grantee(user: UserRead) -> Grantee:
    return Grantee(
        sub=user.username,
        kind="user",
        roles=user.roles,
        agency=user.agency,
        jurisdictions=user.jurisdictions,
        clearance=user.clearance,
    )


async def grant_refresh(kit: IdentityKit, token: str, *, clock: Clock = utcnow) -> TokenResponse:
    """RFC 6749 §6 with rotation: the token is spent; re-use means it leaked, so the whole
    login is revoked: its refresh tokens and every access token issued under it."""
    now, digest = clock(), token_digest(token)
    async with kit.db.transaction() as conn:
        row = await repository.lock_refresh(conn, digest)
        reused = row is not None and row["used_at"] is not None and row["revoked_at"] is None
        if reused and row is not None:
            await repository.revoke_family(conn, row["family_id"], now=now)
            await _audit(
                conn,
                actor=f"user:{row['username']}",
                action="token.refresh_reuse",
                target=f"user:{row['username']}",
                detail={"family": str(row["family_id"])},
                clock=clock,
            )
        elif row is not None and row["revoked_at"] is None and row["expires_at"] > now:
            await repository.mark_refresh_used(conn, digest, now=now)
    if reused and row is not None:
        await kit.verifier.revocations.revoke_session(str(row["family_id"]))
    if row is None or reused or row["revoked_at"] is not None or row["expires_at"] <= now:
        raise OAuthError("invalid_grant", "refresh token is invalid, expired or revoked")
    found = await repository.find_user(kit.db.pool, row["username"])
    if found is None or found[2].status != "active":
        raise OAuthError("invalid_grant", "user is disabled")
    refresh = (new_secret(REFRESH_PREFIX), row["family_id"])
    return await _issue(
        kit, _user_grantee(found[2]), grant="refresh_token", refresh=refresh, clock=clock
    )


async def _issue(
    kit: IdentityKit,
    grantee: Grantee,
    *,
    grant: str,
    refresh: tuple[str, UUID] | None,
    clock: Clock,
) -> TokenResponse:
    """Sign an access token (and store a refresh token), audited in one transaction. A
    user's access token names its login (`sid`), so revoking the login refuses it."""
    now = clock()
    session = None if refresh is None else str(refresh[1])
    token, claims = await kit.issuer.issue(grantee, now=now, session=session)
    async with kit.db.transaction() as conn:
        if refresh is not None:
            await repository.insert_refresh(
                conn,
                digest=token_digest(refresh[0]),
                family_id=refresh[1],
                username=grantee.sub,
                now=now,
                expires_at=now + timedelta(seconds=kit.refresh_ttl_seconds),
            )
        await _audit(
            conn,
            actor=f"{grantee.kind}:{grantee.sub}",
            action="token.issue",
            target=f"{grantee.kind}:{grantee.sub}",
            detail={"grant": grant, "jti": claims.jti, "roles": [str(r) for r in claims.roles]},
            clock=clock,
        )
    return TokenResponse(
        access_token=token,
        token_type="Bearer",  # noqa: S106 (a token type, not a secret)
        expires_in=claims.exp - claims.iat,
        refresh_token=None if refresh is None else refresh[0],
    )


def _not_yours() -> OAuthError:
    return OAuthError("unauthorized_client", "the token was not issued to the caller")


async def revoke_token(
    kit: IdentityKit, token: str, *, caller: Revoker, clock: Clock = utcnow
) -> bool:
    """RFC 7009: revoke an access token (by jti) or a refresh token (its whole login, access
    tokens included), for the authenticated caller it was issued to (400 otherwise).
    False when the token is not one of ours; the endpoint answers 200 either way."""
    now = clock()
    if looks_like_jwt(token):
        try:
            claims = await kit.verifier.verify_signature(token)
        except AuthenticationError:
            return False
        if (claims.kind, claims.sub) != (caller.kind, caller.name):
            raise _not_yours()
        await kit.verifier.revocations.revoke_jti(
            claims.jti, expires_in=claims.exp - int(now.timestamp()) + kit.policy.leeway_seconds
        )
        detail: Detail = {"jti": claims.jti, "type": "access"}
    else:
        async with kit.db.transaction() as conn:
            row = await repository.lock_refresh(conn, token_digest(token))
            if row is None:
                return False
            if ("user", row["username"]) != (caller.kind, caller.name):
                raise _not_yours()
            await repository.revoke_family(conn, row["family_id"], now=now)
        await kit.verifier.revocations.revoke_session(str(row["family_id"]))
        detail = {"family": str(row["family_id"]), "type": "refresh"}
    await _audit_alone(
        kit,
        actor=f"{caller.kind}:{caller.name}",
        action="token.revoke",
        target=f"{caller.kind}:{caller.name}",
        detail=detail,
        clock=clock,
    )
    return True


async def revoke_subject(
    kit: IdentityKit, kind: str, sub: str, *, actor: str, clock: Clock = utcnow
) -> None:
    """Refuse every access token of a subject issued until now (e.g. a leaked credential)."""
    now = clock()
    await kit.verifier.revocations.revoke_subject(kind, sub, at=now)
    await _audit_alone(
        kit,
        actor=actor,
        action="token.revoke_subject",
        target=f"{kind}:{sub}",
        detail={},
        clock=clock,
    )


async def rotate_keys(kit: IdentityKit, *, actor: str, clock: Clock = utcnow) -> SigningKeyRead:
    """A new signing key; the old ones stop signing and keep verifying for the overlap."""
    now = clock()
    kid, public, sealed = new_key_material(kit.sealer)
    async with kit.db.transaction() as conn:
        await repository.lock_keys(conn)
        await repository.insert_key(conn, kid=kid, public_jwk=public, sealed=sealed, now=now)
        retired = await repository.retire_keys(
            conn, except_kid=kid, now=now, verify_until=now + kit.policy.overlap
        )
        await _audit(
            conn,
            actor=actor,
            action="key.rotate",
            target=f"jwt_key:{kid}",
            detail={"retired": retired},
            clock=clock,
        )
    kit.issuer.forget_key()
    return SigningKeyRead(kid=kid, created_at=now, retired_at=None, verify_until=None, signing=True)


async def list_keys(kit: IdentityKit) -> list[SigningKeyRead]:
    """Every signing key, newest first."""
    return await repository.select_keys(kit.db.pool)


async def client_subject(kit: IdentityKit, client_id: str) -> Subject | None:
    """The subject of an active registered client (for a request authenticated by its
    certificate alone), or None."""
    found = await repository.find_client(kit.db.pool, client_id)
    if found is None or found[1].status != "active":
        return None
    client = found[1]
    return Subject(
        id=client.client_id,
        kind="client",
        roles=client.roles,
        agency=client.agency,
        jurisdictions=client.jurisdictions,
        clearance=client.clearance,
        purpose=client.purpose,
    )


async def ensure_signing_key(kit: IdentityKit) -> None:
    """Create the first signing key if there is none (so the JWKS is never empty)."""
    if await repository.signing_key(kit.db.pool) is None:
        await create_first_key(kit.db, kit.sealer)
