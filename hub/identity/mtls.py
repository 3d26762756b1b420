"""mTLS: which routes need a client certificate, and whose certificate it is.

The certificate comes either from the TLS connection itself (the API served by uvicorn with
`ssl_cert_reqs=CERT_OPTIONAL` and the client CA: the handshake verified it, and
`TlsH11Protocol` puts it in the ASGI TLS extension) or, behind a reverse proxy, from a header
holding the URL-encoded PEM (nginx `$ssl_client_escaped_cert`). The header is believed only
when the direct peer is a configured proxy, and the certificate in it is verified again
against the client CA here. Anyone else's header is ignored.
"""

import hashlib
import ipaddress
import ssl
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import msgspec
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from litestar.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from hub.identity.problems import send_problem
from hub.kit.clock import Clock, utcnow
from hub.settings import Settings

CLIENT_CERT_KEY = "hub_client_cert"
MAX_HEADER_BYTES = 16_384

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientCert(msgspec.Struct, frozen=True, kw_only=True):
    """A verified client certificate: its subject name and SHA-256 fingerprint."""

    name: str
    fingerprint: str
    via: str  # "tls" or "proxy"


class MtlsConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What the middleware enforces, read from settings once."""

    prefixes: tuple[str, ...]
    proxies: tuple[Network, ...]
    header: str
    ca_pem: bytes = b""

    @classmethod
    def from_settings(cls, settings: Settings) -> "MtlsConfig":
        """Parse the comma-separated settings; the CA file is read now (start-up)."""
        ca = Path(settings.mtls_ca_file).read_bytes() if settings.mtls_ca_file else b""
        return cls(
            prefixes=split_list(settings.mtls_required_prefixes),
            proxies=tuple(
                ipaddress.ip_network(p, strict=False) for p in split_list(settings.trusted_proxies)
            ),
            header=settings.mtls_proxy_header.lower(),
            ca_pem=ca,
        )

    def requires(self, path: str) -> bool:
        """True when `path` lies under a prefix that needs a client certificate."""
        return any(path == p or path.startswith(p.rstrip("/") + "/") for p in self.prefixes)

    def trusts(self, peer: str | None) -> bool:
        """True when the direct peer address is a configured proxy."""
        if not peer or not self.proxies:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.proxies)


def split_list(value: str) -> tuple[str, ...]:
    """`"a, b,,c"` -> `("a", "b", "c")`."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def describe(cert: x509.Certificate, *, via: str) -> ClientCert:
    """The name (CN, else the first DNS/URI SAN) and fingerprint of a certificate."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    name = str(names[0].value) if names else ""
    if not name:
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            alt = san.get_values_for_type(x509.DNSName) + san.get_values_for_type(
                x509.UniformResourceIdentifier
            )
            name = alt[0] if alt else ""
        except x509.ExtensionNotFound:
            name = ""
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return ClientCert(name=name, fingerprint=digest, via=via)


def verify_pem(pem: bytes, ca_pem: bytes, *, now: datetime) -> x509.Certificate | None:
    """The certificate when a configured CA issued it directly and it is valid now."""
    try:
        leaf = x509.load_pem_x509_certificate(pem)
        authorities = x509.load_pem_x509_certificates(ca_pem) if ca_pem else []
    except ValueError:
        return None
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        return None
    for authority in authorities:
        try:
            leaf.verify_directly_issued_by(authority)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return leaf
    return None


def certificate_from_scope(scope: Scope, config: MtlsConfig, *, now: datetime) -> ClientCert | None:
    """The verified client certificate of this request, from TLS or a trusted proxy."""
    extensions: dict[str, Any] = dict(scope.get("extensions") or {})
    tls: dict[str, Any] = extensions.get("tls") or {}
    chain: Sequence[str] = tls.get("client_cert_chain") or ()
    if chain:
        return describe(x509.load_pem_x509_certificate(chain[0].encode()), via="tls")
    client = scope.get("client")
    if not config.trusts(client[0] if client else None):
        return None
    wanted = config.header.encode()
    raw = next((v for k, v in scope.get("headers", ()) if k.lower() == wanted), None)
    if raw is None or len(raw) > MAX_HEADER_BYTES:
        return None
    leaf = verify_pem(unquote(raw.decode("latin-1")).encode(), config.ca_pem, now=now)
    return None if leaf is None else describe(leaf, via="proxy")


class MtlsMiddleware:
    """Refuses requests under the mTLS prefixes without a verified client certificate and
    leaves the certificate in the request state for authentication (`CLIENT_CERT_KEY`)."""

    def __init__(self, app: ASGIApp, config: MtlsConfig, clock: Clock = utcnow) -> None:
        self.app = app
        self.config = config
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the certificate, then hand the request on."""
        if scope["type"] not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        cert = certificate_from_scope(scope, self.config, now=self.clock())
        if cert is None and self.config.requires(scope["path"]):
            await send_problem(
                scope,
                send,
                status=401,
                code="client_cert_required",
                title="Authentication failed",
                detail="this route requires a verified client certificate (mTLS)",
            )
            return
        if cert is not None:
            scope.setdefault("state", {})[CLIENT_CERT_KEY] = cert
        await self.app(scope, receive, send)


def _with_tls_extension(app: Any, pem: str) -> Any:
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        extensions = scope.setdefault("extensions", {}) or {}
        extensions["tls"] = {"client_cert_chain": [pem], "client_cert_error": None}
        scope["extensions"] = extensions
        await app(scope, receive, send)

    return wrapped


class TlsH11Protocol(H11Protocol):
    """uvicorn's h11 protocol that exposes the verified client certificate to the app through
    the ASGI TLS extension (`scope["extensions"]["tls"]["client_cert_chain"]`)."""

    def connection_made(self, transport: Any) -> None:
        """Remember the peer certificate the TLS handshake verified, if any."""
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der:
            self.app = _with_tls_extension(self.app, ssl.DER_cert_to_PEM_cert(der))


def uvicorn_tls_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.run`/`uvicorn.Config` serving TLS with optional client
    certificates (the middleware demands them on the mTLS prefixes); empty without TLS."""
    if not settings.tls_cert_file:
        return {}
    options: dict[str, Any] = {
        "ssl_certfile": settings.tls_cert_file,
        "ssl_keyfile": settings.tls_key_file or None,
    }
    if settings.mtls_ca_file:
        options |= {
            "ssl_ca_certs": settings.mtls_ca_file,
            "ssl_cert_reqs": ssl.CERT_OPTIONAL,
            "http": TlsH11Protocol,
        }
    return options
