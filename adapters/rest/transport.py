"""HTTP transports for agency deliveries: one pooled guarded transport per TLS setup.

The worker makes about a thousand deliveries a second, so connections are kept and reused;
a client per call would pay a TCP and TLS handshake every time. Requests go straight to the
transport (adapters/exchange.py), without an `httpx.AsyncClient`'s per-request layers.
"""

import ssl

import httpx

from adapters.base import PermanentError
from adapters.egress import EgressGuard, GuardedAsyncTransport
from adapters.rest.config import RestConfig

# (client certificate, client key, CA bundle): what makes two agencies' TLS setups differ.
TlsKey = tuple[str | None, str | None, str | None]

LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=100, keepalive_expiry=30)


def tls_key(config: RestConfig) -> TlsKey:
    """The TLS setup `config` asks for, usable as a dictionary key."""
    return (config.client_cert_file, config.client_key_file, config.ca_file)


def ssl_context(key: TlsKey) -> ssl.SSLContext:
    """A verifying TLS context with the configured CA bundle and client certificate.

    Raises `PermanentError` naming the field whose file cannot be loaded; retrying cannot
    help until an operator fixes the file, and a replay from the dead letters picks it up.
    """
    cert_file, key_file, ca_file = key
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError):
        raise PermanentError("cannot load `ca_file` for the agency's TLS setup") from None
    if cert_file:
        try:
            context.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError):
            raise PermanentError(
                "cannot load `client_cert_file`/`client_key_file` for the agency's TLS setup"
            ) from None
    return context


def build_transport(
    key: TlsKey, egress: EgressGuard, *, max_response_bytes: int
) -> GuardedAsyncTransport:
    """A pooled transport for one TLS setup under the egress policy (no proxies, netrc or CA
    overrides from the environment: only the agency config counts); per-request timeouts
    come from each agency."""
    return egress.async_transport(
        verify=ssl_context(key), limits=LIMITS, max_response_bytes=max_response_bytes
    )


class ClientPool:
    """Transports by TLS setup, created on first use and closed together."""

    def __init__(self, egress: EgressGuard, *, max_response_bytes: int) -> None:
        self.egress = egress
        self.max_response_bytes = max_response_bytes
        self._transports: dict[TlsKey, GuardedAsyncTransport] = {}

    def transport_for(self, config: RestConfig) -> GuardedAsyncTransport:
        """The shared transport for `config`'s TLS setup."""
        key = tls_key(config)
        transport = self._transports.get(key)
        if transport is None:
            transport = self._transports[key] = build_transport(
                key, self.egress, max_response_bytes=self.max_response_bytes
            )
        return transport

    async def aclose(self) -> None:
        """Close every transport (worker shutdown)."""
        transports, self._transports = list(self._transports.values()), {}
        for transport in transports:
            await transport.aclose()
