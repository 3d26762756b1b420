"""OAuth 2.0 for agency systems and console users: clients, users, grants, ES256 access tokens,
rotating refresh tokens, revocation and signing-key rotation.

It owns `oauth_client`, `console_user`, `refresh_token` and `jwt_signing_key`. It must never
store or log a secret in the clear, and never take roles or attributes from a request: they
come from the registry when a token is issued and from the verified token afterwards.
"""

from hub.identity.oauth.access import AccessTokenVerifier, looks_like_jwt
from hub.identity.oauth.kit import IdentityKit
from hub.identity.oauth.schemas import (
    ClientCreate,
    ClientCreated,
    ClientRead,
    SigningKeyRead,
    UserCreate,
    UserCreated,
    UserRead,
)
from hub.identity.oauth.service import (
    add_client,
    add_user,
    disable_user,
    list_clients,
    list_keys,
    list_users,
    revoke_client,
    revoke_subject,
    revoke_token,
    rotate_keys,
    set_user_scope,
)
from hub.identity.oauth.signin import confirm_admin_second_factor

__all__ = [
    "AccessTokenVerifier",
    "ClientCreate",
    "ClientCreated",
    "ClientRead",
    "IdentityKit",
    "SigningKeyRead",
    "UserCreate",
    "UserCreated",
    "UserRead",
    "add_client",
    "add_user",
    "confirm_admin_second_factor",
    "disable_user",
    "list_clients",
    "list_keys",
    "list_users",
    "looks_like_jwt",
    "revoke_client",
    "revoke_subject",
    "revoke_token",
    "rotate_keys",
    "set_user_scope",
]
