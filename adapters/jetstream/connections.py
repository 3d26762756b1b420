"""NATS connections under the hub's egress policy: one kept per server set and credentials.

Every connection is opened here, to an address this module resolved and checked, never by
the client library on its own: reconnecting is off (a dropped connection is replaced on the
next delivery, through the same checks), so neither a DNS answer that changed since
registration nor a server the cluster advertises (`connect_urls`) can steer the worker to an
address the policy does not permit.
"""

import asyncio
import ipaddress
import logging
import ssl

import nats
import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from adapters.egress import EgressGuard, EgressRefusedError, resolve_permitted
from adapters.jetstream.config import JetStreamConfig, ServerAddress, is_server_url, server_address

log = logging.getLogger(__name__)

_Key = tuple[tuple[str, ...], str | None, str | None, str | None, str | None]


class ServerEgressGuard(EgressGuard):
    """The hub's egress policy, also reading NATS server URLs (`nats://`, `tls://`)."""

    @classmethod
    def of(cls, guard: EgressGuard) -> "ServerEgressGuard":
        """The same policy as `guard` (allowed networks, TLS required in production)."""
        return cls(
            allowed_networks=[str(network) for network in guard.allowed],
            require_https=guard.require_https,
        )

    async def check_endpoint(self, url: str) -> None:
        """Registration: a server URL's form and every address its host resolves to now."""
        if not is_server_url(url):
            await super().check_endpoint(url)
            return
        address = self.check_server(url)
        await resolve_permitted(self, address.host, address.port, within=5.0)

    def check_server(self, url: str) -> ServerAddress:
        """The server's address when its form is acceptable here (TLS in production)."""
        address = server_address(url)
        if self.require_https and not address.tls:
            raise EgressRefusedError("must use tls:// in production")
        return address


class Connections:
    """Open NATS connections by configuration; safe to share between concurrent sends."""

    def __init__(self, egress: ServerEgressGuard) -> None:
        self.egress = egress
        self._open: dict[_Key, Client] = {}
        self._locks: dict[_Key, asyncio.Lock] = {}

    async def jetstream(self, config: JetStreamConfig) -> JetStreamContext:
        """A JetStream context on a live connection for `config` (opened when needed)."""
        key = _key(config)
        client = self._open.get(key)
        if client is None or not client.is_connected:
            async with self._locks.setdefault(key, asyncio.Lock()):
                client = self._open.get(key)
                if client is None or not client.is_connected:
                    if client is not None:
                        await _close_quietly(client)
                    client = await self._connect(config)
                    self._open[key] = client
        return client.jetstream(timeout=config.timeout_seconds)

    async def aclose(self) -> None:
        """Close every connection."""
        open_now, self._open = list(self._open.values()), {}
        for client in open_now:
            await _close_quietly(client)

    async def _connect(self, config: JetStreamConfig) -> Client:
        """The first server, in configured order, that accepts a connection."""
        failure: Exception | None = None
        for url in config.servers:
            address = self.egress.check_server(url)
            checked = await resolve_permitted(
                self.egress, address.host, address.port, within=config.timeout_seconds
            )
            for ip in checked:
                try:
                    return await _open_one(config, address, ip)
                except (OSError, TimeoutError, nats.errors.Error) as exc:
                    failure = exc
        assert failure is not None  # noqa: S101 - servers and their addresses are never empty
        raise failure


async def _open_one(config: JetStreamConfig, address: ServerAddress, ip: str) -> Client:
    """One connection to `ip`, TLS verified against the configured host name."""
    host = f"[{ip}]" if isinstance(ipaddress.ip_address(ip), ipaddress.IPv6Address) else ip
    scheme = "tls" if address.tls else "nats"
    tls = ssl.create_default_context(cafile=config.ca_file) if address.tls else None
    client = Client()
    try:
        async with asyncio.timeout(config.timeout_seconds):
            await client.connect(
                servers=[f"{scheme}://{host}:{address.port}"],
                name="hub-jetstream-adapter",
                allow_reconnect=False,
                # One try: reconnect attempts count per server, and 1 lets nats-py give up.
                max_reconnect_attempts=1,
                reconnect_time_wait=0,
                connect_timeout=max(1, int(config.timeout_seconds)),
                tls=tls,
                tls_hostname=address.host if address.tls else None,
                user=config.user,
                password=config.password,
                token=config.token,
                error_cb=_log_error,
            )
    except BaseException:
        # A refused login leaves nats-py's socket open; close it, not the garbage collector.
        await _close_quietly(client)
        raise
    return client


async def _log_error(error: Exception) -> None:
    # nats-py reports connection errors here as well as raising them; they are classified
    # by the adapter, so the log keeps only the type (its text may carry an address).
    log.debug("nats connection error: %s", type(error).__name__)


async def _close_quietly(client: Client) -> None:
    try:
        await client.close()
    except (OSError, nats.errors.Error):
        return


def _key(config: JetStreamConfig) -> _Key:
    return (config.servers, config.user, config.password, config.token, config.ca_file)
