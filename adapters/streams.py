"""An asyncio-native network stream and a lean connection pool for httpcore, the transport
under every adapter's client.

httpcore's default stream goes through anyio, and its pool asks every idle connection on
every request and every response close whether the server has hung up ("is_readable"): a
`getpeername` and a `poll` system call plus anyio's attribute table, per idle connection. At
a thousand deliveries a second over a dozen kept-alive connections that was a quarter of a
delivery's CPU. Here the event loop reads the socket itself into a small buffer, so a hang-up
is mostly known already (end of file, or bytes nobody asked for); what arrived since the
loop last looked is one `poll` on a poll object made once per connection. Reads and writes
are plain transport calls without anyio's checkpoints.
"""

import asyncio
import select
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

import httpcore

# Bytes read ahead of httpcore before the socket stops being read (an HTTP/1.1 answer is
# read as it arrives; this only bounds a peer that sends more than anyone asked for).
READ_AHEAD_BYTES = 256 * 1024


class _Reader(asyncio.Protocol):
    """Buffers what the loop reads and wakes the one reader httpcore runs per connection."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._write_paused = False
        self._read_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # noqa: S101 - stream sockets only
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > READ_AHEAD_BYTES and self.transport is not None:
            self.transport.pause_reading()
            self._read_paused = True
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close our side too: HTTP/1.1 never half-closes

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()
        self._write_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def take(self, max_bytes: int) -> bytes:
        """Up to `max_bytes` buffered bytes (reading resumes once the buffer drained)."""
        data = bytes(self.buffer[:max_bytes])
        del self.buffer[:max_bytes]
        if self._read_paused and len(self.buffer) <= READ_AHEAD_BYTES // 2:
            self._read_paused = False
            if self.transport is not None and not self.transport.is_closing():
                self.transport.resume_reading()
        return data

    async def wait_readable(self) -> None:
        """Until bytes are buffered or the peer is gone."""
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def drain(self) -> None:
        """Until the transport's write buffer is below its high-water mark."""
        if self._write_paused:
            self._drained = asyncio.get_running_loop().create_future()
            try:
                await self._drained
            finally:
                self._drained = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One TCP (or TLS) connection as httpcore sees it."""

    def __init__(self, transport: asyncio.Transport, reader: _Reader, poller: Any) -> None:
        self._transport = transport
        self._reader = reader
        self._poller = poller  # select.poll() with this socket registered for input

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109 - httpcore's signature
        reader = self._reader
        if not reader.buffer and not reader.eof:
            try:
                async with asyncio.timeout(timeout):
                    await reader.wait_readable()
            except TimeoutError:
                raise httpcore.ReadTimeout(f"no answer within {timeout}s") from None
        if reader.buffer:
            return reader.take(max_bytes)
        if reader.error is not None:
            raise httpcore.ReadError(type(reader.error).__name__)
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109 - httpcore's signature
        if not buffer:
            return
        if self._transport.is_closing():
            raise httpcore.WriteError("connection closed")
        self._transport.write(buffer)
        try:
            async with asyncio.timeout(timeout):
                await self._reader.drain()
        except TimeoutError:
            raise httpcore.WriteTimeout(f"could not send within {timeout}s") from None

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport, self._reader, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError:
            self._transport.close()
            raise httpcore.ConnectTimeout("TLS handshake timed out") from None
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            self._transport.close()
            raise httpcore.ConnectError(f"TLS handshake failed ({type(exc).__name__})") from None
        assert isinstance(transport, asyncio.Transport)  # noqa: S101 - start_tls returns one
        self._reader.transport = transport
        return AsyncioStream(transport, self._reader, self._poller)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # Idle and readable means the server hung up (or broke the protocol): expired. The
            # poll sees a hang-up the loop has not read yet (a restarted agency's old sockets).
            reader = self._reader
            return reader.eof or bool(reader.buffer) or bool(self._poller.poll(0))
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        return None


async def connect_tcp(
    address: str,
    port: int,
    *,
    timeout: float | None,  # noqa: ASYNC109 - httpcore's bound, passed on
    local_address: str | None = None,
    socket_options: Iterable[Any] | None = None,
) -> AsyncioStream:
    """A connected stream to `address` (an address the caller checked, not a name)."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            transport, reader = await loop.create_connection(
                _Reader,
                host=address,
                port=port,
                local_addr=None if local_address is None else (local_address, 0),
            )
    except TimeoutError:
        raise httpcore.ConnectTimeout(f"no connection within {timeout}s") from None
    except OSError as exc:
        raise httpcore.ConnectError(f"cannot connect ({type(exc).__name__})") from None
    assert isinstance(transport, asyncio.Transport)  # noqa: S101 - a stream socket
    sock = transport.get_extra_info("socket")
    for option in socket_options or ():
        sock.setsockopt(*option)
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return AsyncioStream(transport, reader, poller)


class LeanPool(httpcore.AsyncConnectionPool):
    """httpcore's pool for one process's deliveries, without its request queue.

    httpcore 1.0 re-assigns its whole queue of requests to its whole list of connections on
    every request and every response close (and re-counts every connection for each idle one
    while doing so): with a dozen kept-alive connections the largest single cost of a
    delivery. Here a request waits for one of `max_connections` slots, takes the most recently
    used idle connection to its origin that has not expired (or makes one with httpcore's own
    `create_connection`), and gives both back when its answer is closed; up to
    `max_keepalive_connections` idle connections are kept. Connections, HTTP/1.1 and TLS stay
    httpcore's.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._slots = asyncio.Semaphore(self._max_connections)
        # By (scheme, host, port): httpcore's Origin is not hashable.
        self._idle: dict[tuple[bytes, bytes, int], list[httpcore.AsyncConnectionInterface]] = {}
        self._idle_count = 0

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        """Send on an idle or new connection; the answer's close gives the connection back."""
        if request.url.scheme not in (b"http", b"https"):
            raise httpcore.UnsupportedProtocol("only http and https agency URLs are sent to")
        await self._acquire_slot(request.extensions.get("timeout", {}).get("pool"))
        connection: httpcore.AsyncConnectionInterface | None = None
        try:
            connection = await self._idle_connection(request.url.origin)
            try:
                response = await connection.handle_async_request(request)
            except httpcore.ConnectionNotAvailable:
                # Taken idle, found otherwise (httpcore's pool retries the same way).
                await connection.aclose()
                connection = self.create_connection(request.url.origin)
                response = await connection.handle_async_request(request)
        except BaseException:
            if connection is not None:
                await connection.aclose()
            self._slots.release()
            raise
        assert isinstance(response.stream, AsyncIterable)  # noqa: S101 - httpcore's answer
        return httpcore.Response(
            status=response.status,
            headers=response.headers,
            content=_Returning(response.stream, self, connection, request.url.origin),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        """Close the idle connections (the ones in use close with their answers)."""
        idle, self._idle, self._idle_count = self._idle, {}, 0
        for connections in idle.values():
            for connection in connections:
                await connection.aclose()

    async def _acquire_slot(self, timeout: float | None) -> None:  # noqa: ASYNC109 - httpcore's pool bound
        try:
            async with asyncio.timeout(timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise httpcore.PoolTimeout(f"no connection free within {timeout}s") from None

    async def _idle_connection(self, origin: httpcore.Origin) -> httpcore.AsyncConnectionInterface:
        idle = self._idle.get(_key(origin))
        while idle:
            connection = idle.pop()
            self._idle_count -= 1
            if connection.is_idle() and not connection.has_expired():
                return connection
            await connection.aclose()  # expired, or the agency hung up
        return self.create_connection(origin)

    async def _give_back(
        self, connection: httpcore.AsyncConnectionInterface, origin: httpcore.Origin
    ) -> None:
        self._slots.release()
        if connection.is_idle() and self._idle_count < self._max_keepalive_connections:
            self._idle.setdefault(_key(origin), []).append(connection)
            self._idle_count += 1
        else:
            await connection.aclose()


def _key(origin: httpcore.Origin) -> tuple[bytes, bytes, int]:
    return (origin.scheme, origin.host, origin.port)


class _Returning:
    """An answer's body; closing it gives its connection and slot back to the pool once."""

    def __init__(
        self,
        stream: AsyncIterable[bytes],
        pool: LeanPool,
        connection: httpcore.AsyncConnectionInterface,
        origin: httpcore.Origin,
    ) -> None:
        self._stream = stream
        self._pool = pool
        self._connection = connection
        self._origin = origin
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._stream:
                yield part
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._stream, "aclose", None)
            if close is not None:
                await close()
        finally:
            # A close cut short leaves the connection not idle: it is closed, not reused.
            await self._pool._give_back(self._connection, self._origin)
