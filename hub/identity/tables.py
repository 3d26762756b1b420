"""Piccolo tables of identity: edge nodes (0001); OAuth clients, console users, refresh tokens
and signing keys (0005)."""

from piccolo.columns import JSONB, UUID, Array, Bytea, Integer, Text, Timestamptz
from piccolo.table import Table


class EdgeNode(Table, tablename="edge_node"):
    """A camera box allowed to upload, identified by its Ed25519 key."""

    id = UUID(primary_key=True)
    name = Text(unique=True)
    public_key = Bytea()
    status = Text(default="active")
    created_at = Timestamptz()
    revoked_at = Timestamptz(null=True, default=None)
    revoked_reason = Text(null=True, default=None)


class OAuthClient(Table, tablename="oauth_client"):
    """An agency system that gets access tokens with the client-credentials grant."""

    client_id = Text(primary_key=True)
    secret_hash = Text()
    agency = Text(null=True, default=None)
    roles = Array(base_column=Text())
    jurisdictions = Array(base_column=Text())
    clearance = Integer(default=0)
    purpose = Text(null=True, default=None)
    status = Text(default="active")
    created_at = Timestamptz()
    revoked_at = Timestamptz(null=True, default=None)


class ConsoleUser(Table, tablename="console_user"):
    """A person using the console: password (argon2id) and, for admins always, TOTP."""

    username = Text(primary_key=True)
    password_hash = Text()
    totp_secret = Bytea(null=True, default=None)
    roles = Array(base_column=Text())
    agency = Text(null=True, default=None)
    jurisdictions = Array(base_column=Text())
    clearance = Integer(default=0)
    status = Text(default="active")
    created_at = Timestamptz()
    disabled_at = Timestamptz(null=True, default=None)


class RefreshToken(Table, tablename="refresh_token"):
    """One rotating refresh token, kept only as its SHA-256."""

    token_hash = Bytea(primary_key=True)
    family_id = UUID()
    username = Text()
    created_at = Timestamptz()
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)
    revoked_at = Timestamptz(null=True, default=None)


class JwtSigningKey(Table, tablename="jwt_signing_key"):
    """An ES256 key pair; the private half sealed under the identity key."""

    kid = Text(primary_key=True)
    public_jwk = JSONB()
    private_key = Bytea()
    created_at = Timestamptz()
    retired_at = Timestamptz(null=True, default=None)
    verify_until = Timestamptz(null=True, default=None)
