"""A lean HTTP/1.1 client for deliveries: kept-alive connections per origin, answers parsed
by llhttp (httptools, the C parser under uvicorn) as the event loop reads them.

httpcore and h11 parse in pure Python, through several layers of events, locks and
checkpoints; at a thousand deliveries a second that was about half of a REST delivery's
CPU. Here a connection is an `asyncio.Protocol`: the loop hands it bytes, llhttp calls back
with the status, headers and body, and the request that waits is woken once its answer is
complete. One timer per request bounds it; nothing else is scheduled. It runs on asyncio's
loop and on uvloop's (the worker's, ADR 0008).

What it keeps of a full client: TLS with the caller's context (SNI and verification by
host name), keep-alive with an idle expiry and a check that the agency has not hung up
before a connection is reused, `Connection: close` and HTTP/1.0 answers, chunked and
content-length bodies and bodies delimited by the connection's end, a cap on the raw body
and on the head, interim 1xx answers skipped, and errors as httpx's exception classes (the
adapters classify those). Where it may connect is the caller's `resolve` (the egress guard,
adapters/egress.py): it connects only to the addresses that function returns.
"""

import asyncio
import re
import select
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httptools
import httpx

# An answer's status line and headers; an ack that needs more is not one.
MAX_HEAD_BYTES = 64 * 1024
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\r\n\0]")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Set by the pool on the request; the caller's own headers never choose these.
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})

Resolve = Callable[[str, int, float | None], Awaitable[list[str]]]
RawHeaders = list[tuple[bytes, bytes]]


class ResponseTooLargeError(httpx.ReadError):
    """An agency's answer (decoded) is larger than the client's cap."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where a URL's request goes: origin, request target and Host header."""

    scheme: str
    host: str
    port: int
    path: str
    host_header: str

    @property
    def origin(self) -> tuple[str, str, int]:
        """(scheme, host, port): the key kept-alive connections are pooled by."""
        return (self.scheme, self.host, self.port)


@dataclass(frozen=True, slots=True)
class RawAnswer:
    """Status, headers as sent and the body before content decoding."""

    status_code: int
    headers: RawHeaders
    body: bytes


def parse_target(url: str) -> Target:
    """The request target of an http(s) URL (the caller checked its form)."""
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise httpx.UnsupportedProtocol("only http and https agency URLs are sent to")
    host = parts.hostname
    port = parts.port or _DEFAULT_PORTS[parts.scheme]
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == _DEFAULT_PORTS[parts.scheme] else f"{shown}:{port}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port, path, host_header)


def request_head(
    method: str, target: Target, headers: Iterable[tuple[str, str]], length: int
) -> bytes:
    """The request line and headers; `httpx.LocalProtocolError` for a header that could
    split the request (the values are ours, but a trace state passes through from an edge)."""
    lines = [f"{method} {target.path} HTTP/1.1", f"Host: {target.host_header}"]
    for name, value in headers:
        if name.lower() in _OWN_HEADERS:
            continue
        if not _TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
            raise httpx.LocalProtocolError("a request header has a name or value HTTP forbids")
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Connection(asyncio.Protocol):
    """One TCP (or TLS) connection carrying one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.open = False
        self.reusable = False
        self.idle_since = 0.0
        self._poller: Any = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[RawAnswer] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._limit = 0
        self._reset()

    def _reset(self) -> None:
        self._status = 0
        self._headers: RawHeaders = []
        self._chunks: list[bytes] = []
        self._size = 0
        self._head_bytes = 0
        self._in_body = False
        self._framed = False  # Content-Length or chunked: the end is known without EOF
        self._too_large = False

    # -- what the loop calls --------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.open = True
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self._poller = select.poll()
            self._poller.register(sock.fileno(), select.POLLIN)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            # Bytes nobody asked for (an idle-timeout 408, garbage): never reuse this one.
            self._close()
            return
        if not self._in_body:
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("the agency switched protocols"))
        except httptools.HttpParserError:
            self._fail(httpx.RemoteProtocolError("the agency's answer is not valid HTTP/1.1"))
        else:
            if self._too_large:
                self._fail(ResponseTooLargeError(f"agency answer larger than {self._limit} bytes"))
            elif not self._in_body and self._head_bytes > MAX_HEAD_BYTES:
                self._fail(httpx.RemoteProtocolError("the agency's answer head is too large"))

    def eof_received(self) -> bool:
        self._ended(None)
        return False  # close our side too: HTTP/1.1 never half-closes

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended(exc)
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:
        self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    # -- what llhttp calls ----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        lower = name.lower()
        if lower == b"content-length" or (
            lower == b"transfer-encoding" and b"chunked" in value.lower()
        ):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._in_body = True

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._limit:
            self._too_large = True
        elif not self._too_large:
            self._chunks.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200:  # an interim answer (100 Continue): the real one follows
            self._reset()
            return
        self.reusable = self._parser.should_keep_alive()
        self._complete()

    # -- what the pool calls --------------------------------------------------------------

    def is_reusable(self, now: float, expiry: float) -> bool:
        """Idle, kept alive, not expired, and not hung up on (a hang-up the loop has not read
        yet shows to one `poll`: a restarted agency's old sockets)."""
        if not (self.open and self.reusable) or now - self.idle_since > expiry:
            return False
        return not (self._poller is not None and self._poller.poll(0))

    async def send(
        self,
        head: bytes,
        body: bytes,
        *,
        timeout: float | None,  # noqa: ASYNC109 - one timer bounds the request
        limit: int,
    ) -> RawAnswer:
        """Write the request, wait for its whole answer; `timeout` bounds both."""
        transport = self.transport
        if transport is None or not self.open or transport.is_closing():
            raise httpx.RemoteProtocolError("the connection is closed")
        loop = asyncio.get_running_loop()
        self._reset()
        self._limit = limit
        self.reusable = False
        waiter: asyncio.Future[RawAnswer] = loop.create_future()
        self._waiter = waiter
        timer = None if timeout is None else loop.call_later(timeout, self._time_out)
        try:
            transport.writelines((head, body))
            if self._drained is not None:
                await asyncio.wait((self._drained, waiter), return_when=asyncio.FIRST_COMPLETED)
            return await waiter
        finally:
            if timer is not None:
                timer.cancel()
            self._waiter = None
            self.idle_since = time.monotonic()

    def close(self) -> None:
        """Close the connection (it will not be reused)."""
        self._close()

    # -- internals ------------------------------------------------------------------------

    def _complete(self) -> None:
        if self._too_large:
            self._fail(ResponseTooLargeError(f"agency answer larger than {self._limit} bytes"))
            return
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            answer = RawAnswer(self._status, self._headers, b"".join(self._chunks))
            waiter.set_result(answer)

    def _ended(self, exc: Exception | None) -> None:
        self.open = False
        self.reusable = False
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._in_body and not self._framed:
            self._complete()  # the body ran to the connection's end, as HTTP/1.0 allows
            return
        where = "mid-answer" if self._in_body else "before answering"
        error: httpx.TransportError = httpx.RemoteProtocolError(
            f"the agency closed the connection {where}"
        )
        if exc is not None:
            error = httpx.ReadError(f"connection lost {where} ({type(exc).__name__})")
        waiter.set_exception(error)

    def _fail(self, error: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self._close()

    def _time_out(self) -> None:
        if self._waiter is None or self._waiter.done():
            return  # answered just before the timer ran: the connection stays good
        if self._drained is not None:
            self._fail(httpx.WriteTimeout("could not send the request in time"))
        else:
            self._fail(httpx.ReadTimeout("no whole answer in time"))

    def _close(self) -> None:
        self.open = False
        self.reusable = False
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Kept-alive connections by origin, at most `max_connections` in use at once.

    A request waits for a slot, takes the most recently used idle connection to its origin
    that is still good (or makes one), and gives both back when its answer is read; at most
    `max_keepalive` idle connections are kept. A connection that failed, timed out, was
    cancelled mid-answer or was told `Connection: close` is closed, never reused.
    """

    def __init__(
        self,
        *,
        resolve: Resolve,
        ssl_context: ssl.SSLContext,
        max_connections: int,
        max_keepalive: int,
        keepalive_expiry: float,
    ) -> None:
        self._resolve = resolve
        self._ssl = ssl_context
        self._slots = asyncio.Semaphore(max_connections)
        self._max_keepalive = max_keepalive
        self._expiry = keepalive_expiry
        self._idle: dict[tuple[str, str, int], list[Connection]] = {}
        self._idle_count = 0

    async def request(
        self,
        target: Target,
        head: bytes,
        body: bytes,
        *,
        timeout: float | None,  # noqa: ASYNC109 - connect, and then send and answer, each
        pool_timeout: float | None = None,
        limit: int,
    ) -> RawAnswer:
        """One request on a pooled connection; its raw answer, the body at most `limit` bytes
        (`ResponseTooLargeError` past it)."""
        await self._acquire(timeout if pool_timeout is None else pool_timeout)
        connection: Connection | None = None
        try:
            connection = self._take_idle(target.origin) or await self._connect(target, timeout)
            answer = await connection.send(head, body, timeout=timeout, limit=limit)
        except BaseException:
            if connection is not None:
                connection.close()
            self._slots.release()
            raise
        self._slots.release()
        self._give_back(target.origin, connection)
        return answer

    async def aclose(self) -> None:
        """Close the idle connections (those in use close when their request ends)."""
        idle, self._idle, self._idle_count = self._idle, {}, 0
        for connections in idle.values():
            for connection in connections:
                connection.close()

    async def _acquire(self, timeout: float | None) -> None:  # noqa: ASYNC109 - the pool bound
        if not self._slots.locked():
            await self._slots.acquire()  # free: no timer
            return
        try:
            async with asyncio.timeout(timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout(f"no connection free within {timeout}s") from None

    def _take_idle(self, origin: tuple[str, str, int]) -> Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            self._idle_count -= 1
            if connection.is_reusable(now, self._expiry):
                return connection
            connection.close()  # expired, or the agency hung up
        return None

    def _give_back(self, origin: tuple[str, str, int], connection: Connection) -> None:
        if connection.reusable and connection.open and self._idle_count < self._max_keepalive:
            self._idle.setdefault(origin, []).append(connection)
            self._idle_count += 1
        else:
            connection.close()

    async def _connect(self, target: Target, timeout: float | None) -> Connection:  # noqa: ASYNC109 - the connect bound
        addresses = await self._resolve(target.host, target.port, timeout)
        error: Exception | None = None
        for address in addresses:  # TLS still verifies the host name: it is the SNI
            try:
                return await self._connect_to(address, target, timeout)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                error = exc
        assert error is not None  # noqa: S101 - resolve never returns no address
        raise error

    async def _connect_to(self, address: str, target: Target, timeout: float | None) -> Connection:  # noqa: ASYNC109 - the connect bound
        loop = asyncio.get_running_loop()
        tls = target.scheme == "https"
        try:
            async with asyncio.timeout(timeout):
                _, connection = await loop.create_connection(
                    Connection,
                    host=address,
                    port=target.port,
                    ssl=self._ssl if tls else None,
                    server_hostname=target.host if tls else None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"no connection within {timeout}s") from None
        except (OSError, ssl.SSLError) as exc:
            # The class name says enough; the text could name the address.
            raise httpx.ConnectError(f"cannot connect ({type(exc).__name__})") from None
        return connection
