"""SQL for OAuth clients, console users, refresh tokens and signing keys; the only module that
queries those tables."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from hub.identity.oauth.schemas import (
    ClientCreate,
    ClientRead,
    SigningKeyRead,
    UserCreate,
    UserRead,
)

_CLIENT = (
    "client_id, agency, roles, jurisdictions, clearance, purpose, status, created_at, revoked_at"
)
_USER = (
    "username, roles, totp_secret IS NOT NULL AS totp, agency, jurisdictions, clearance, "
    "status, created_at, disabled_at"
)


async def insert_client(
    conn: asyncpg.Connection, create: ClientCreate, *, secret_hash: str, now: datetime
) -> ClientRead | None:
    """Insert a client; None when the id is taken."""
    row = await conn.fetchrow(
        "INSERT INTO oauth_client (client_id, secret_hash, agency, roles, jurisdictions, "
        "clearance, purpose, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
        "ON CONFLICT (client_id) DO NOTHING RETURNING " + _CLIENT,
        create.client_id,
        secret_hash,
        create.agency,
        list(create.roles),
        list(create.jurisdictions),
        create.clearance,
        create.purpose,
        now,
    )
    return None if row is None else _client(row)


async def select_clients(db: asyncpg.Connection | asyncpg.Pool) -> list[ClientRead]:
    """Every client, oldest first."""
    rows = await db.fetch("SELECT " + _CLIENT + " FROM oauth_client ORDER BY created_at, client_id")
    return [_client(row) for row in rows]


async def find_client(
    db: asyncpg.Connection | asyncpg.Pool, client_id: str
) -> tuple[str, ClientRead] | None:
    """A client's secret hash and record, or None."""
    row = await db.fetchrow(
        "SELECT secret_hash, " + _CLIENT + " FROM oauth_client WHERE client_id = $1", client_id
    )
    return None if row is None else (row["secret_hash"], _client(row))


async def revoke_client(
    conn: asyncpg.Connection, client_id: str, *, now: datetime
) -> ClientRead | None:
    """Mark a client revoked (idempotent); None when unknown."""
    row = await conn.fetchrow(
        "UPDATE oauth_client SET status = 'revoked', revoked_at = coalesce(revoked_at, $2) "
        "WHERE client_id = $1 RETURNING " + _CLIENT,
        client_id,
        now,
    )
    return None if row is None else _client(row)


async def insert_user(
    conn: asyncpg.Connection,
    create: UserCreate,
    *,
    password_hash: str,
    totp_sealed: bytes | None,
    now: datetime,
) -> UserRead | None:
    """Insert a console user; None when the name is taken."""
    row = await conn.fetchrow(
        "INSERT INTO console_user (username, password_hash, totp_secret, roles, agency, "
        "jurisdictions, clearance, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
        "ON CONFLICT (username) DO NOTHING RETURNING " + _USER,
        create.username,
        password_hash,
        totp_sealed,
        list(create.roles),
        create.agency,
        list(create.jurisdictions),
        create.clearance,
        now,
    )
    return None if row is None else _user(row)


async def select_users(db: asyncpg.Connection | asyncpg.Pool) -> list[UserRead]:
    """Every console user, oldest first."""
    rows = await db.fetch("SELECT " + _USER + " FROM console_user ORDER BY created_at, username")
    return [_user(row) for row in rows]


async def find_user(
    db: asyncpg.Connection | asyncpg.Pool, username: str
) -> tuple[str, bytes | None, UserRead] | None:
    """A user's password hash, sealed TOTP secret and record, or None."""
    row = await db.fetchrow(
        "SELECT password_hash, totp_secret, " + _USER + " FROM console_user WHERE username = $1",
        username,
    )
    if row is None:
        return None
    sealed = None if row["totp_secret"] is None else bytes(row["totp_secret"])
    return row["password_hash"], sealed, _user(row)


async def set_user_scope(
    conn: asyncpg.Connection, username: str, *, jurisdictions: list[str], clearance: int
) -> tuple[UserRead, UserRead] | None:
    """Set a user's jurisdictions and clearance; the record before and after, or None when
    the user is unknown."""
    row = await conn.fetchrow(
        "SELECT " + _USER + " FROM console_user WHERE username = $1 FOR UPDATE", username
    )
    if row is None:
        return None
    after = await conn.fetchrow(
        "UPDATE console_user SET jurisdictions = $2, clearance = $3 WHERE username = $1 "
        "RETURNING " + _USER,
        username,
        jurisdictions,
        clearance,
    )
    return _user(row), _user(after)


async def disable_user(
    conn: asyncpg.Connection, username: str, *, now: datetime
) -> UserRead | None:
    """Disable a user and revoke every refresh token of theirs; None when unknown."""
    row = await conn.fetchrow(
        "UPDATE console_user SET status = 'disabled', disabled_at = coalesce(disabled_at, $2) "
        "WHERE username = $1 RETURNING " + _USER,
        username,
        now,
    )
    await conn.execute(
        "UPDATE refresh_token SET revoked_at = $2 WHERE username = $1 AND revoked_at IS NULL",
        username,
        now,
    )
    return None if row is None else _user(row)


async def insert_refresh(
    conn: asyncpg.Connection,
    *,
    digest: bytes,
    family_id: UUID,
    username: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    """Store one refresh token by its digest."""
    await conn.execute(
        "INSERT INTO refresh_token (token_hash, family_id, username, created_at, expires_at) "
        "VALUES ($1, $2, $3, $4, $5)",
        digest,
        family_id,
        username,
        now,
        expires_at,
    )


async def lock_refresh(conn: asyncpg.Connection, digest: bytes) -> Mapping[str, Any] | None:
    """The refresh token row with this digest, locked for the rest of the transaction."""
    row: Mapping[str, Any] | None = await conn.fetchrow(
        "SELECT family_id, username, expires_at, used_at, revoked_at FROM refresh_token "
        "WHERE token_hash = $1 FOR UPDATE",
        digest,
    )
    return row


async def mark_refresh_used(conn: asyncpg.Connection, digest: bytes, *, now: datetime) -> None:
    """Record that a refresh token was exchanged."""
    await conn.execute("UPDATE refresh_token SET used_at = $2 WHERE token_hash = $1", digest, now)


async def revoke_family(conn: asyncpg.Connection, family_id: UUID, *, now: datetime) -> int:
    """Revoke every live token of a login; returns how many were live."""
    result: str = await conn.execute(
        "UPDATE refresh_token SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
        family_id,
        now,
    )
    return int(result.rsplit(" ", 1)[-1])


async def insert_key(
    conn: asyncpg.Connection, *, kid: str, public_jwk: dict[str, str], sealed: bytes, now: datetime
) -> None:
    """Store a new signing key."""
    await conn.execute(
        "INSERT INTO jwt_signing_key (kid, public_jwk, private_key, created_at) "
        "VALUES ($1, $2::jsonb, $3, $4)",
        kid,
        msgspec.json.encode(public_jwk).decode(),
        sealed,
        now,
    )


async def retire_keys(
    conn: asyncpg.Connection, *, except_kid: str, now: datetime, verify_until: datetime
) -> list[str]:
    """Stop every other key from signing; they verify until `verify_until`."""
    rows = await conn.fetch(
        "UPDATE jwt_signing_key SET retired_at = $2, verify_until = $3 "
        "WHERE retired_at IS NULL AND kid <> $1 RETURNING kid",
        except_kid,
        now,
        verify_until,
    )
    return [row["kid"] for row in rows]


async def signing_key(db: asyncpg.Connection | asyncpg.Pool) -> tuple[str, bytes] | None:
    """The kid and sealed private key of the newest unretired key."""
    row = await db.fetchrow(
        "SELECT kid, private_key FROM jwt_signing_key WHERE retired_at IS NULL "
        "ORDER BY created_at DESC LIMIT 1"
    )
    return None if row is None else (row["kid"], bytes(row["private_key"]))


async def verifying_keys(
    db: asyncpg.Connection | asyncpg.Pool, *, now: datetime
) -> list[tuple[str, dict[str, str]]]:
    """Public JWKs of every key that may still verify a token."""
    rows = await db.fetch(
        "SELECT kid, public_jwk::text AS jwk FROM jwt_signing_key "
        "WHERE verify_until IS NULL OR verify_until > $1 ORDER BY created_at DESC",
        now,
    )
    return [(row["kid"], msgspec.json.decode(row["jwk"], type=dict[str, str])) for row in rows]


async def select_keys(db: asyncpg.Connection | asyncpg.Pool) -> list[SigningKeyRead]:
    """Every signing key, newest first."""
    rows = await db.fetch(
        "SELECT kid, created_at, retired_at, verify_until FROM jwt_signing_key "
        "ORDER BY created_at DESC"
    )
    return [
        SigningKeyRead(
            kid=row["kid"],
            created_at=row["created_at"],
            retired_at=row["retired_at"],
            verify_until=row["verify_until"],
            signing=row["retired_at"] is None,
        )
        for row in rows
    ]


async def lock_keys(conn: asyncpg.Connection) -> None:
    """Serialise key creation and rotation across processes (transaction-scoped lock)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('hub.identity.signing_key'))")


def _client(row: Mapping[str, Any]) -> ClientRead:
    return msgspec.convert({k: row[k] for k in ClientRead.__struct_fields__}, ClientRead)


def _user(row: Mapping[str, Any]) -> UserRead:
    return msgspec.convert({k: row[k] for k in UserRead.__struct_fields__}, UserRead)
