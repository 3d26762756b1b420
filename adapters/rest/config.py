"""An agency's REST adapter configuration: typed, validated, and never echoed back.

Validation errors name the field but never repeat its value, because several fields are
secrets (webhook secrets, the OAuth2 client secret).
"""

import base64
import binascii
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec

from adapters.base import ConfigError

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
# Standard Webhooks recommends 24-64 random bytes; fewer than 16 is too weak to accept.
MIN_SECRET_BYTES = 16
MAX_SECRET_BYTES = 64
# At most a few secrets are live at once during a rotation; more is a mistake.
MAX_SECRETS = 5


class OAuth2Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """OAuth2 client-credentials grant the agency wants before it takes a delivery."""

    token_url: str
    client_id: str
    client_secret: str
    scope: str | None = None


class RestConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where and how to POST signed webhooks to one agency.

    `secrets`: Standard Webhooks secrets; every one signs each message, so an agency can
    rotate by adding the new secret before dropping the old one.
    """

    url: str
    secrets: tuple[str, ...]
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=120)] = 10.0
    oauth2: OAuth2Config | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None
    ca_file: str | None = None


def parse_config(raw: Mapping[str, Any]) -> RestConfig:
    """The validated configuration; raises `ConfigError` naming the first bad field."""
    try:
        config = msgspec.convert(dict(raw), RestConfig)
    except msgspec.ValidationError as exc:
        # msgspec names the path (`$.oauth2.token_url`) and the expected type, not the value.
        raise ConfigError(f"rest adapter config: {exc}") from None
    _check_url("url", config.url)
    _check_secrets(config.secrets)
    if config.oauth2 is not None:
        _check_oauth2(config.oauth2)
    _check_tls_files(config)
    return config


def secret_key(secret: str) -> bytes | None:
    """The key bytes of a `whsec_<base64>` secret, or None when it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        return None
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES else None


def _check_url(field: str, url: str) -> None:
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigError(f"rest adapter config: `{field}` is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"rest adapter config: `{field}` must be an http(s) URL with a host")
    if parts.username or parts.password:
        # Credentials in a URL end up in logs and listings; they belong in `oauth2`.
        raise ConfigError(f"rest adapter config: `{field}` must not carry credentials")


def _check_secrets(secrets: tuple[str, ...]) -> None:
    if not secrets:
        raise ConfigError("rest adapter config: `secrets` needs at least one secret")
    if len(secrets) > MAX_SECRETS:
        raise ConfigError(f"rest adapter config: `secrets` holds more than {MAX_SECRETS}")
    for index, secret in enumerate(secrets):
        if secret_key(secret) is None:
            raise ConfigError(
                f"rest adapter config: `secrets[{index}]` is not a Standard Webhooks secret "
                f"(whsec_ + base64 of {MIN_SECRET_BYTES}-{MAX_SECRET_BYTES} bytes)"
            )


def _check_oauth2(oauth2: OAuth2Config) -> None:
    _check_url("oauth2.token_url", oauth2.token_url)
    if not oauth2.client_id:
        raise ConfigError("rest adapter config: `oauth2.client_id` is empty")
    if not oauth2.client_secret:
        raise ConfigError("rest adapter config: `oauth2.client_secret` is empty")


def _check_tls_files(config: RestConfig) -> None:
    # The files are read by the worker, which may run elsewhere; only their pairing is checked.
    if config.client_key_file and not config.client_cert_file:
        raise ConfigError("rest adapter config: `client_key_file` needs `client_cert_file`")
    for field in ("client_cert_file", "client_key_file", "ca_file"):
        if getattr(config, field) == "":
            raise ConfigError(f"rest adapter config: `{field}` is empty")
