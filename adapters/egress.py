"""Where adapters may send: public addresses only, unless an operator allow-lists a network.

An agency endpoint is an admin's input, and the worker sits inside the hub's network, so an
unchecked URL makes the hub a proxy into it (cloud metadata at 169.254.169.254, databases on
loopback, a port scan through `hub agencies test`). `EgressGuard` is checked twice: at
registration (every URL of the configuration, resolved) and at connect time, where the
transports below resolve the host themselves, refuse it when any address is not permitted,
and connect to the address they checked, so a DNS answer that changes after registration
(rebinding) cannot steer a delivery inside. The same transports refuse credentials in URLs,
plain http when https is required, and read every answer with a cap that also holds after
gzip or deflate decoding.
"""

import asyncio
import ipaddress
import logging
import math
import socket
import ssl
import zlib
from collections.abc import AsyncIterable, Iterable, Iterator, Sequence
from typing import Any

import httpcore
import httpx

from adapters.http11 import Pool, RawHeaders, Target, parse_target, request_head

# Raised by both transports; callers import it from here.
from adapters.http11 import ResponseTooLargeError as ResponseTooLargeError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Encodings the capped reader can decode; httpx would otherwise also offer br and zstd.
ACCEPT_ENCODING = "gzip, deflate"
DEFAULT_MAX_RESPONSE_BYTES = 1 << 20
# httpx.Limits(None) means unbounded; a pool needs a number.
UNBOUNDED_CONNECTIONS = 1 << 16
MAX_CACHED_TARGETS = 1024

log = logging.getLogger(__name__)


class EgressRefusedError(ValueError):
    """A URL or address the egress policy does not permit; the text names no address."""


class EgressGuard:
    """The egress policy: which addresses adapters may reach and which URLs they may use."""

    def __init__(self, *, allowed_networks: Iterable[str] = (), require_https: bool = False):
        try:
            self.allowed: tuple[IPNetwork, ...] = tuple(
                ipaddress.ip_network(text.strip(), strict=False)
                for text in allowed_networks
                if text.strip()
            )
        except ValueError as exc:
            raise ValueError(f"allowed networks: {exc}") from None
        self.require_https = require_https

    @classmethod
    def from_text(cls, networks: str, *, require_https: bool) -> "EgressGuard":
        """From a comma-separated list of networks (the setting's form)."""
        return cls(allowed_networks=networks.split(","), require_https=require_https)

    def permits(self, address: IPAddress) -> bool:
        """True for a public unicast address or one inside an allow-listed network."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self.allowed):
            return True
        return address.is_global and not address.is_multicast

    def check_url(self, url: str | httpx.URL) -> httpx.URL:
        """The parsed URL when its form is acceptable (scheme, host, no credentials)."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:
            raise EgressRefusedError("not a valid URL") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise EgressRefusedError("must be an http(s) URL with a host")
        if parsed.userinfo:
            raise EgressRefusedError("must not carry credentials (user:password@)")
        if self.require_https and parsed.scheme != "https":
            raise EgressRefusedError("must use https in production")
        return parsed

    async def check_endpoint(self, url: str) -> None:
        """Registration: the URL's form, and every address its host resolves to now."""
        parsed = self.check_url(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        await resolve_permitted(self, parsed.host, port, within=5.0)

    def async_transport(
        self,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = httpx.Limits(),  # noqa: B008 - immutable
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> "GuardedAsyncTransport":
        """An httpx transport for `httpx.AsyncClient(transport=...)` under this policy."""
        return GuardedAsyncTransport(
            self, verify=verify, limits=limits, max_response_bytes=max_response_bytes
        )

    def sync_transport(
        self,
        *,
        verify: ssl.SSLContext | bool = True,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> "GuardedSyncTransport":
        """The same for `httpx.Client` (zeep loads WSDLs synchronously)."""
        return GuardedSyncTransport(self, verify=verify, max_response_bytes=max_response_bytes)


def _refuse(host: str) -> EgressRefusedError:
    # The operator learns which host was refused from the log; the attempt row and the
    # caller only that the agency could not be reached.
    log.warning("egress refused: %s resolves to an address that is not permitted", host)
    return EgressRefusedError("the agency's address is not permitted")


def _permitted(guard: EgressGuard, host: str, infos: Sequence[Any]) -> list[str]:
    """The resolved addresses, in resolver order, when every one is permitted."""
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise _refuse(host)
    for text in addresses:
        if not guard.permits(ipaddress.ip_address(text.split("%", 1)[0])):
            raise _refuse(host)
    return addresses


async def resolve_permitted(
    guard: EgressGuard, host: str, port: int, *, within: float | None
) -> list[str]:
    """Resolve `host`; its addresses when all are permitted, else `EgressRefusedError`."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(within):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError):
        raise EgressRefusedError("the agency's host name does not resolve") from None
    return _permitted(guard, host, infos)


def resolve_permitted_sync(guard: EgressGuard, host: str, port: int) -> list[str]:
    """`resolve_permitted` for synchronous clients."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise EgressRefusedError("the agency's host name does not resolve") from None
    return _permitted(guard, host, infos)


class _GuardedSyncBackend(httpcore.NetworkBackend):
    """httpcore's synchronous backend, connecting only to addresses it resolved and checked."""

    def __init__(self, guard: EgressGuard) -> None:
        self.guard = guard
        self.inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = resolve_permitted_sync(self.guard, host, port)
        except EgressRefusedError as exc:
            raise httpcore.ConnectError(str(exc)) from None
        return self.inner.connect_tcp(addresses[0], port, timeout, local_address, socket_options)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not agency endpoints")


class BoundedDecoder:
    """Decodes an answer body (identity, gzip or deflate) and refuses more than `limit`
    decoded bytes, checking while it inflates so a small bomb never grows in memory."""

    def __init__(self, encoding: str, limit: int) -> None:
        self.limit = limit
        self.size = 0
        encoding = encoding.strip().lower()
        if encoding in ("", "identity"):
            self._inflate: Any = None
        elif encoding in ("gzip", "x-gzip"):
            self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._inflate = zlib.decompressobj()
        else:
            raise httpx.DecodingError(f"unsupported content-encoding {encoding[:32]!r}")

    def feed(self, chunk: bytes) -> bytes:
        """The decoded bytes of `chunk`; `ResponseTooLargeError` past the limit."""
        if self._inflate is None:
            return self._count(chunk)
        try:
            out = self._inflate.decompress(chunk, self.limit - self.size + 1)
        except zlib.error:
            raise httpx.DecodingError("agency answer is not valid compressed data") from None
        if self._inflate.unconsumed_tail:
            raise ResponseTooLargeError(f"agency answer larger than {self.limit} bytes")
        return self._count(out)

    def finish(self) -> bytes:
        """What the decompressor still holds."""
        return b"" if self._inflate is None else self._count(self._inflate.flush())

    def _count(self, data: bytes) -> bytes:
        self.size += len(data)
        if self.size > self.limit:
            raise ResponseTooLargeError(f"agency answer larger than {self.limit} bytes")
        return data


class _CappedSyncStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, decoder: BoundedDecoder) -> None:
        self.inner = inner
        self.decoder = decoder

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            if data := self.decoder.feed(chunk):
                yield data
        if tail := self.decoder.finish():
            yield tail

    def close(self) -> None:
        self.inner.close()


def _prepare(guard: EgressGuard, request: httpx.Request) -> None:
    try:
        guard.check_url(request.url)
    except EgressRefusedError as exc:
        raise httpx.ConnectError(str(exc), request=request) from None
    if request.headers.get("accept-encoding") != "identity":
        request.headers["accept-encoding"] = ACCEPT_ENCODING


def _decoded_headers(response: httpx.Response) -> tuple[str, list[tuple[bytes, bytes]]]:
    """The content-encoding, and the headers without it (the body is handed on decoded)."""
    encoding = response.headers.get("content-encoding", "")
    drop = (b"content-encoding", b"content-length")
    headers = [(k, v) for k, v in response.headers.raw if k.lower() not in drop]
    return encoding, headers


class GuardedAsyncTransport(httpx.AsyncHTTPTransport):
    """Guarded HTTP/1.1 for adapters (adapters/http11.py): URL checks, connects only to
    checked addresses, answers decoded and capped. Adapters call `send` (adapters/exchange.py).

    It stays an `httpx.AsyncHTTPTransport` for one reason: OpenTelemetry's httpx
    instrumentation (on when traces are exported, hub/observability/tracing.py) wraps that
    class's `handle_async_request`, and the outgoing call must then be a client span of the
    delivery's trace whose `traceparent` the agency receives. So httpx clients (token
    requests) and, while instrumented, adapters' sends go through it, to this pool (httpx's
    own is replaced by a bridge); otherwise a send goes to the pool directly.
    """

    def __init__(
        self,
        guard: EgressGuard,
        *,
        verify: ssl.SSLContext | bool,
        limits: httpx.Limits,
        max_response_bytes: int,
    ) -> None:
        context = httpx.create_ssl_context(verify=verify, trust_env=False)
        super().__init__(verify=context, limits=limits, trust_env=False)
        self.guard = guard
        self.max_response_bytes = max_response_bytes
        self._targets: dict[str, Target] = {}
        self._connections = Pool(
            resolve=self._resolve,
            ssl_context=context,
            max_connections=limits.max_connections or UNBOUNDED_CONNECTIONS,
            max_keepalive=limits.max_keepalive_connections or UNBOUNDED_CONNECTIONS,
            # httpx: None keeps idle connections for good.
            keepalive_expiry=(
                math.inf if limits.keepalive_expiry is None else limits.keepalive_expiry
            ),
        )
        self._pool = _PoolBridge(self)  # type: ignore[assignment]  # what httpx's method calls

    async def send(
        self,
        method: str,
        url: str,
        *,
        content: bytes,
        headers: Iterable[tuple[str, str]],
        timeout: float | None,  # noqa: ASYNC109 - connect, then send and answer, each
        pool_timeout: float | None = None,
    ) -> tuple[int, RawHeaders, bytes]:
        """One request under the egress policy: status, headers (less the content encoding
        and length) and the decoded body, at most `max_response_bytes`."""
        if _traced():
            return await self._send_traced(method, url, content, headers, timeout)
        return await self.send_direct(
            method, url, content=content, headers=headers, timeout=timeout,
            pool_timeout=pool_timeout,
        )  # fmt: skip

    async def send_direct(
        self,
        method: str,
        url: str,
        *,
        content: bytes,
        headers: Iterable[tuple[str, str]],
        timeout: float | None,  # noqa: ASYNC109 - connect, then send and answer, each
        pool_timeout: float | None = None,
    ) -> tuple[int, RawHeaders, bytes]:
        """`send` straight to the pool, never through httpx."""
        target = self._target(url)
        lines = list(headers)
        # Only encodings the capped decoder can bound are offered (httpx offers br and zstd).
        if [v for k, v in lines if k.lower() == "accept-encoding"] != ["identity"]:
            lines = [(k, v) for k, v in lines if k.lower() != "accept-encoding"]
            lines.append(("Accept-Encoding", ACCEPT_ENCODING))
        head = request_head(method, target, lines, len(content))
        answer = await self._connections.request(
            target, head, content, timeout=timeout, pool_timeout=pool_timeout,
            limit=self.max_response_bytes,
        )  # fmt: skip
        return answer.status_code, *_decoded(answer.headers, answer.body, self.max_response_bytes)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """For httpx clients and traced sends: the URL is checked here (httpx hands its pool
        the URL without credentials), then httpx's own method takes it to the bridge."""
        self._target(str(request.url))
        return await super().handle_async_request(request)

    async def aclose(self) -> None:
        """Close the kept-alive connections."""
        await self._connections.aclose()

    async def _send_traced(
        self,
        method: str,
        url: str,
        content: bytes,
        headers: Iterable[tuple[str, str]],
        timeout: float | None,  # noqa: ASYNC109 - httpx's per-phase bound
    ) -> tuple[int, RawHeaders, bytes]:
        request = httpx.Request(
            method, url, content=content, headers=list(headers),
            extensions={"timeout": httpx.Timeout(timeout).as_dict()},
        )  # fmt: skip
        response = await self.handle_async_request(request)
        body = await response.aread()
        return response.status_code, response.headers.raw, body

    def _target(self, url: str) -> Target:
        # An agency has one or two URLs: checking and splitting each once is enough.
        target = self._targets.get(url)
        if target is None:
            try:
                self.guard.check_url(url)
            except EgressRefusedError as exc:
                raise httpx.ConnectError(str(exc)) from None
            if len(self._targets) >= MAX_CACHED_TARGETS:
                self._targets.clear()
            target = self._targets[url] = parse_target(url)
        return target

    async def _resolve(self, host: str, port: int, within: float | None) -> list[str]:
        try:
            return await resolve_permitted(self.guard, host, port, within=within)
        except EgressRefusedError as exc:
            raise httpx.ConnectError(str(exc)) from None


def _traced() -> bool:
    """True while OpenTelemetry's httpx instrumentation wraps httpx's transport method."""
    return hasattr(httpx.AsyncHTTPTransport.handle_async_request, "__wrapped__")


class _PoolBridge:
    """What `httpx.AsyncHTTPTransport.handle_async_request` calls as its pool: the request
    goes to the guarded transport's own pool; the answer comes back read, decoded and capped."""

    def __init__(self, transport: GuardedAsyncTransport) -> None:
        self._transport = transport

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        url = request.url
        host = url.host.decode("ascii")
        shown = f"[{host}]" if ":" in host else host
        port = f":{url.port}" if url.port else ""
        target = f"{url.scheme.decode('ascii')}://{shown}{port}{url.target.decode('ascii')}"
        assert isinstance(request.stream, AsyncIterable)  # noqa: S101 - httpx's request
        content = b"".join([part async for part in request.stream])
        timeouts = request.extensions.get("timeout", {})
        phases = [timeouts.get(p) for p in ("connect", "read", "write")]
        status, headers, body = await self._transport.send_direct(
            request.method.decode("ascii"), target, content=content,
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers],
            timeout=max((t for t in phases if t is not None), default=None),
            pool_timeout=timeouts.get("pool"),
        )  # fmt: skip
        return httpcore.Response(status, headers=headers, content=body)

    async def aclose(self) -> None:
        """Close the transport's kept-alive connections."""
        await self._transport.aclose()

    async def __aenter__(self) -> "_PoolBridge":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()  # an httpx client leaving its `async with` closes its transport


def _decoded(headers: RawHeaders, body: bytes, limit: int) -> tuple[RawHeaders, bytes]:
    """The headers without content-encoding/length, and the body decoded within `limit`."""
    encoding = ""
    kept: RawHeaders = []
    for name, value in headers:
        lower = name.lower()
        if lower == b"content-encoding":
            encoding = value.decode("latin-1")
        elif lower != b"content-length":
            kept.append((name, value))
    if not encoding:
        return headers, body  # the common case: nothing to decode, the length is the body's
    decoder = BoundedDecoder(encoding, limit)
    return kept, decoder.feed(body) + decoder.finish()


class GuardedSyncTransport(httpx.HTTPTransport):
    """`GuardedAsyncTransport` for synchronous clients."""

    def __init__(
        self, guard: EgressGuard, *, verify: ssl.SSLContext | bool, max_response_bytes: int
    ) -> None:
        super().__init__(verify=verify, trust_env=False)
        self.guard = guard
        self.max_response_bytes = max_response_bytes
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            network_backend=_GuardedSyncBackend(guard),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send under the egress policy; the answer streams decoded and capped."""
        _prepare(self.guard, request)
        response = super().handle_request(request)
        encoding, headers = _decoded_headers(response)
        try:
            decoder = BoundedDecoder(encoding, self.max_response_bytes)
        except httpx.DecodingError:
            response.close()
            raise
        assert isinstance(response.stream, httpx.SyncByteStream)  # noqa: S101 - httpx's own
        stream = _CappedSyncStream(response.stream, decoder)
        return httpx.Response(
            response.status_code, headers=headers, stream=stream, extensions=response.extensions
        )
