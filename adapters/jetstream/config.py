"""A JetStream agency's configuration: NATS servers, the stream and the agency's subject.

Validation errors name the field, never its value (`password` and `token` are secrets).
"""

import re
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec

from adapters.base import ConfigError

DEFAULT_PORT = 4222
SCHEMES = ("nats", "tls")
MAX_SERVERS = 8
# JetStream stream names: no whitespace, dots, wildcards or path separators (they become
# file names on the server and tokens of API subjects).
_STREAM = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# One subject token: what publishing accepts (no wildcards `*`/`>`, no whitespace).
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_SUBJECT_TOKENS = 16


class JetStreamConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where one agency's events are published.

    `servers`: NATS URLs (`nats://host:4222`, or `tls://` for TLS), tried in order.
    `stream`: the stream that must capture `subject` (sent as `Nats-Expected-Stream`, so a
    subject captured by another stream is refused instead of stored there).
    `subject`: the agency's subject, e.g. `hub.events.police-north`.
    """

    servers: tuple[str, ...]
    stream: str
    subject: str
    user: str | None = None
    password: str | None = None
    token: str | None = None
    ca_file: str | None = None
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=60)] = 5.0


class ServerAddress(msgspec.Struct, frozen=True, kw_only=True):
    """One configured server: its host name, port and whether it speaks TLS."""

    host: str
    port: int
    tls: bool


def parse_config(raw: Mapping[str, Any]) -> JetStreamConfig:
    """The validated configuration; `ConfigError` names the first bad field."""
    try:
        config = msgspec.convert(dict(raw), JetStreamConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"jetstream adapter config: {exc}") from None
    if not config.servers:
        raise ConfigError("jetstream adapter config: `servers` needs at least one URL")
    if len(config.servers) > MAX_SERVERS:
        raise ConfigError(f"jetstream adapter config: `servers` holds more than {MAX_SERVERS}")
    for index, url in enumerate(config.servers):
        server_address(url, field=f"servers[{index}]")
    if not _STREAM.match(config.stream):
        raise ConfigError("jetstream adapter config: `stream` must be 1-64 of A-Z a-z 0-9 _ -")
    _check_subject(config.subject)
    _check_credentials(config)
    return config


def server_address(url: str, *, field: str = "servers") -> ServerAddress:
    """Host, port and TLS of a `nats://` or `tls://` URL; `ConfigError` when malformed."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError(f"jetstream adapter config: `{field}` is not a valid URL") from None
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise ConfigError(
            f"jetstream adapter config: `{field}` must be a nats:// or tls:// URL with a host"
        )
    if parts.username or parts.password:
        # Credentials in a URL end up in listings and logs; they have their own fields.
        raise ConfigError(f"jetstream adapter config: `{field}` must not carry credentials")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"jetstream adapter config: `{field}` must name only host and port")
    return ServerAddress(host=parts.hostname, port=port or DEFAULT_PORT, tls=parts.scheme == "tls")


def is_server_url(url: str) -> bool:
    """True for a URL this adapter connects to (as opposed to an http(s) one)."""
    return url.split("://", 1)[0].lower() in SCHEMES


def _check_subject(subject: str) -> None:
    tokens = subject.split(".")
    if len(tokens) > MAX_SUBJECT_TOKENS or not all(_TOKEN.match(token) for token in tokens):
        raise ConfigError(
            "jetstream adapter config: `subject` must be dot-separated tokens of "
            "A-Z a-z 0-9 _ - (no wildcards)"
        )


def _check_credentials(config: JetStreamConfig) -> None:
    if (config.user is None) != (config.password is None):
        raise ConfigError("jetstream adapter config: `user` and `password` go together")
    if config.token is not None and config.user is not None:
        raise ConfigError("jetstream adapter config: give `token` or `user`, not both")
    for field in ("user", "password", "token", "ca_file"):
        if getattr(config, field) == "":
            raise ConfigError(f"jetstream adapter config: `{field}` is empty")
    if config.ca_file and not all(server_address(url).tls for url in config.servers):
        raise ConfigError("jetstream adapter config: `ca_file` needs tls:// servers")
