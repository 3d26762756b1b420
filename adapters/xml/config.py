"""An XML agency's configuration as the hub stores it."""

import re
from collections.abc import Mapping
from typing import Annotated, Any

import httpx
import msgspec

from adapters.base import ConfigError

# CAP forbids spaces, commas and markup characters in sender ids.
_CAP_TOKEN = re.compile(r"^[^\s,<&]+$")


class XmlConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where to POST signed CAP alerts and which key signs them."""

    url: str
    signing_key_file: str
    signing_cert_file: str
    sender: Annotated[str, msgspec.Meta(min_length=1, max_length=255)] = "hub@hub.local"
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=120)] = 10.0


def convert_config(raw: Mapping[str, Any]) -> XmlConfig:
    """The typed config, or `ConfigError` naming the field (file checks are the adapter's)."""
    try:
        config = msgspec.convert(dict(raw), XmlConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid xml agency config: {exc}") from None
    try:
        url = httpx.URL(config.url)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"url: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError("url: must be an absolute http:// or https:// URL")
    if url.userinfo:
        raise ConfigError("url: credentials in the URL would leak into listings and logs")
    if not _CAP_TOKEN.match(config.sender):
        raise ConfigError("sender: CAP sender ids contain no spaces, commas, '<' or '&'")
    return config
