"""HTTP clients for agency deliveries: one pooled `httpx.AsyncClient` per TLS setup.

The worker makes about a thousand deliveries a second, so connections are kept and reused;
a client per call would pay a TCP and TLS handshake every time.
"""

import ssl

import httpx

from adapters.base import PermanentError
from adapters.egress import EgressGuard
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


def build_client(key: TlsKey, egress: EgressGuard, *, max_response_bytes: int) -> httpx.AsyncClient:
    """A pooled client for one TLS setup under the egress policy; per-request timeouts come
    from each agency."""
    transport = egress.async_transport(
        verify=ssl_context(key), limits=LIMITS, max_response_bytes=max_response_bytes
    )
    # No proxies, netrc or CA overrides from the environment: only the agency config counts.
    return httpx.AsyncClient(transport=transport, trust_env=False, follow_redirects=False)


class ClientPool:
    """Clients by TLS setup, created on first use and closed together."""

    def __init__(self, egress: EgressGuard, *, max_response_bytes: int) -> None:
        self.egress = egress
        self.max_response_bytes = max_response_bytes
        self._clients: dict[TlsKey, httpx.AsyncClient] = {}

    def client_for(self, config: RestConfig) -> httpx.AsyncClient:
        """The shared client for `config`'s TLS setup."""
        key = tls_key(config)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = build_client(
                key, self.egress, max_response_bytes=self.max_response_bytes
            )
        return client

    async def aclose(self) -> None:
        """Close every client (worker shutdown)."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()
