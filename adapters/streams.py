"""An asyncio-native network stream and a linear connection pool for httpcore, the transport
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
from collections.abc import Iterable
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


class LinearPool(httpcore.AsyncConnectionPool):
    """httpcore's pool with its bookkeeping made linear in the connections it holds.

    httpcore 1.0 re-counts every connection for each idle one on every request and every
    response close (`len([c.is_idle() for c in connections])` inside the loop over them):
    with a dozen kept-alive connections, ~130 calls per step and the largest single cost of
    a delivery. The rules are httpcore's own, in its order; only the count is kept as it goes.
    """

    def _assign_requests_to_connections(self) -> list[httpcore.AsyncConnectionInterface]:
        closing: list[httpcore.AsyncConnectionInterface] = []
        connections = self._connections
        for connection in list(connections):
            if connection.is_closed():
                connections.remove(connection)
            elif connection.has_expired() or (
                # httpcore's rule as it runs: past the keep-alive bound, an idle one goes.
                len(connections) > self._max_keepalive_connections and connection.is_idle()
            ):
                connections.remove(connection)
                closing.append(connection)
        for pool_request in [r for r in self._requests if r.is_queued()]:
            origin = pool_request.request.url.origin
            available = next(
                (c for c in connections if c.can_handle_request(origin) and c.is_available()),
                None,
            )
            if available is None and len(connections) >= self._max_connections:
                idle = next((c for c in connections if c.is_idle()), None)
                if idle is None:
                    continue  # the request waits for a connection to come back
                connections.remove(idle)
                closing.append(idle)
            if available is None:
                available = self.create_connection(origin)
                connections.append(available)
            pool_request.assign_to_connection(available)
        return closing
