"""The SOAP adapter's per-agency configuration and its validation."""

import re
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec

from adapters.base import ConfigError

# An XML NCName, roughly: what WSDL service, port and operation names look like.
Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$")]
Url = Annotated[str, msgspec.Meta(min_length=8, max_length=2048)]
MAX_TIMEOUT_SECONDS = 120.0

_AT_FIELD = re.compile(r"at `\$\.([A-Za-z_]+)")
_NAMED_FIELD = re.compile(r"field `([A-Za-z_]+)`")


class SoapConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where the agency's WSDL is and which operation takes our deliveries.

    `service`/`port` pick a port when the WSDL has several (default: the first); `address`
    overrides the WSDL's soap:address (e.g. the WSDL names an internal host name).
    """

    wsdl_url: Url
    operation: Name
    service: Name | None = None
    port: Name | None = None
    address: Url | None = None
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=MAX_TIMEOUT_SECONDS)] = 10.0


def parse_config(raw: Mapping[str, Any]) -> SoapConfig:
    """A validated `SoapConfig`; `ConfigError` names the offending field."""
    try:
        config = msgspec.convert(dict(raw), SoapConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(_name_field(str(exc))) from None
    for field in ("wsdl_url", "address"):
        value = getattr(config, field)
        if value is not None and not _is_http_url(value):
            raise ConfigError(f"{field}: must be an http(s) URL with a host")
        if value is not None and _has_credentials(value):
            # httpx would send them as Basic auth and log them with the URL.
            raise ConfigError(f"{field}: must not carry credentials (user:password@)")
    return config


def _has_credentials(value: str) -> bool:
    parts = urlsplit(value)
    return parts.username is not None or parts.password is not None


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _name_field(text: str) -> str:
    """msgspec's message, led by the field it is about (`timeout_seconds: Expected ...`)."""
    found = _AT_FIELD.search(text) or _NAMED_FIELD.search(text)
    if found is None:
        return f"soap config: {text}"
    reason = _AT_FIELD.sub("", text).rstrip(" -")
    return f"{found.group(1)}: {reason}"
