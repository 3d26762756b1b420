"""Loaded WSDLs, cached per worker: parsing a WSDL costs far more than a delivery, so each
(wsdl_url, service, port, address) is loaded once and reused until it is `max_age` old."""

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import zeep
from zeep.proxy import AsyncServiceProxy

from adapters.egress import EgressGuard, GuardedAsyncTransport
from adapters.soap.config import SoapConfig
from adapters.soap.envelope import PreparedOperation
from adapters.soap.transport import MAX_WSDL_BYTES, CallHeadersPlugin, GuardedTransport, origin_of

# An agency may publish a new WSDL; an hour is soon enough to notice without a restart.
DEFAULT_MAX_AGE_SECONDS = 3600.0

CacheKey = tuple[str, str | None, str | None, str | None]


class PortNotFoundError(LookupError):
    """The configured service, port or operation is not in the agency's WSDL."""


@dataclass(frozen=True, slots=True)
class BoundService:
    """One port of a loaded WSDL, ready to call."""

    proxy: AsyncServiceProxy
    binding: Any  # zeep's Soap11Binding or Soap12Binding
    loaded_at: float
    # Envelope templates by operation (None: the operation takes zeep's full path).
    prepared: dict[str, PreparedOperation | None] = field(default_factory=dict)

    def operation(self, name: str) -> Any:
        """zeep's binding operation; `PortNotFoundError` when the port has no such operation."""
        try:
            return self.binding.get(name)
        except ValueError:
            raise PortNotFoundError(f"the WSDL port has no operation {name!r}") from None


class ServiceCache:
    """Bound services by configuration; concurrent first calls share one WSDL load."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        calls: GuardedAsyncTransport,
        call_timeout_seconds: float,
        plugin: CallHeadersPlugin,
        egress: EgressGuard,
        max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
    ) -> None:
        self._http = http
        self._calls = calls
        self._call_timeout = call_timeout_seconds
        self._egress = egress
        self._plugin = plugin
        self._max_age = max_age_seconds
        self._bound: dict[CacheKey, BoundService] = {}
        self._locks: dict[CacheKey, asyncio.Lock] = {}

    async def bound(self, config: SoapConfig) -> BoundService:
        """The service for `config`, loading its WSDL (off the event loop) when needed."""
        key: CacheKey = (config.wsdl_url, config.service, config.port, config.address)
        found = self._fresh(key)
        if found is not None:
            return found
        async with self._locks.setdefault(key, asyncio.Lock()):
            found = self._fresh(key)
            if found is None:
                # zeep loads WSDLs synchronously; a thread keeps the loop serving deliveries.
                client = await asyncio.to_thread(self._load, config)
                found = bind_port(client, config)
                self._bound[key] = found
        return found

    def _fresh(self, key: CacheKey) -> BoundService | None:
        found = self._bound.get(key)
        if found is None or time.monotonic() - found.loaded_at > self._max_age:
            return None
        return found

    def _load(self, config: SoapConfig) -> zeep.AsyncClient:
        settings = zeep.Settings(strict=True, forbid_dtd=True, forbid_entities=True)
        wsdl_transport = self._egress.sync_transport(max_response_bytes=MAX_WSDL_BYTES)
        with httpx.Client(
            timeout=config.timeout_seconds, transport=wsdl_transport, trust_env=False
        ) as wsdl_http:
            transport = GuardedTransport(
                origin=origin_of(config.wsdl_url),
                calls=self._calls,
                call_timeout_seconds=self._call_timeout,
                client=self._http,
                wsdl_client=wsdl_http,
            )
            return zeep.AsyncClient(  # type: ignore[no-untyped-call]  # zeep is untyped
                config.wsdl_url, transport=transport, plugins=[self._plugin], settings=settings
            )


def bind_port(client: zeep.AsyncClient, config: SoapConfig) -> BoundService:
    """The configured (or first) service and port, at the configured (or WSDL's) address."""
    services = client.wsdl.services
    try:
        service = services[config.service] if config.service else next(iter(services.values()))
        port = service.ports[config.port] if config.port else next(iter(service.ports.values()))
    except (KeyError, StopIteration):
        raise PortNotFoundError("the WSDL has no such service or port") from None
    options = dict(port.binding_options or {})
    if config.address:
        options["address"] = config.address
    if not options.get("address"):
        raise PortNotFoundError("the WSDL port has no SOAP address; set `address`")
    proxy = AsyncServiceProxy(client, port.binding, **options)  # type: ignore[no-untyped-call]
    return BoundService(proxy=proxy, binding=port.binding, loaded_at=time.monotonic())
