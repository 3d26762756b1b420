"""Structs of OAuth clients, console users, signing keys, tokens and their claims."""

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from hub.identity.schemas import Role

AccountName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.@\-]+$")
]
Jurisdiction = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Clearance = Annotated[int, msgspec.Meta(ge=0, le=10)]


class ClientCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Register an agency system for the client-credentials grant."""

    client_id: AccountName
    roles: list[Role]
    agency: str | None = None
    jurisdictions: list[Jurisdiction] = []
    clearance: Clearance = 0
    purpose: str | None = None


class ClientRead(msgspec.Struct, frozen=True, kw_only=True):
    """A registered client (never its secret)."""

    client_id: str
    roles: list[Role]
    agency: str | None
    jurisdictions: list[str]
    clearance: int
    purpose: str | None
    status: Literal["active", "revoked"]
    created_at: datetime
    revoked_at: datetime | None = None


class ClientCreated(msgspec.Struct, frozen=True, kw_only=True):
    """A new client and its secret, shown this once."""

    client: ClientRead
    client_secret: str


class UserCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Register a console user; admins always get TOTP."""

    username: AccountName
    password: Annotated[str, msgspec.Meta(min_length=12, max_length=1024)]
    roles: list[Role]
    totp: bool = False
    agency: str | None = None
    jurisdictions: list[Jurisdiction] = []
    clearance: Clearance = 0


class UserRead(msgspec.Struct, frozen=True, kw_only=True):
    """A console user (never the password or TOTP secret)."""

    username: str
    roles: list[Role]
    totp: bool
    agency: str | None
    jurisdictions: list[str]
    clearance: int
    status: Literal["active", "disabled"]
    created_at: datetime
    disabled_at: datetime | None = None


class UserCreated(msgspec.Struct, frozen=True, kw_only=True):
    """A new user and the TOTP provisioning URI, shown this once."""

    user: UserRead
    totp_uri: str | None = None


class SigningKeyRead(msgspec.Struct, frozen=True, kw_only=True):
    """A signing key's public facts."""

    kid: str
    created_at: datetime
    retired_at: datetime | None
    verify_until: datetime | None
    signing: bool


class AccessClaims(msgspec.Struct, frozen=True, kw_only=True):
    """The claims of a hub access token (unknown claims are ignored, not trusted)."""

    iss: str
    aud: str | list[str]
    sub: str
    exp: int
    iat: int
    nbf: int | None = None
    jti: str
    kind: Literal["user", "client"]
    roles: list[Role]
    agency: str | None = None
    jurisdictions: list[str] = []
    clearance: int = 0
    purpose: str | None = None
    sid: str | None = None  # the login (refresh-token family) of a user's token


class TokenResponse(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """RFC 6749 §5.1 successful token response."""

    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    refresh_token: str | None = None


class Grantee(msgspec.Struct, frozen=True, kw_only=True):
    """Who a token is issued to, read from the registry at issue time."""

    sub: str
    kind: Literal["user", "client"]
    roles: list[Role]
    agency: str | None = None
    jurisdictions: list[str] = []
    clearance: int = 0
    purpose: str | None = None


class LockoutRead(msgspec.Struct, frozen=True, kw_only=True):
    """An account locked after too many failed sign-ins (`user:<name>`)."""

    account: str
    failures: int
    locked_until: datetime


class Revoker(msgspec.Struct, frozen=True, kw_only=True):
    """Who asks to revoke a token: an authenticated client, or a user by its access token."""

    kind: Literal["user", "client"]
    name: str
