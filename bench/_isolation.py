"""Failing agencies for the delivery bench: one that is dead and one that answers slowly.

Not a benchmark of its own (the leading underscore keeps `make bench` from running it). The
delivery bench measures healthy agencies' latency alone, then beside these two, to show that a
failing agency holds only its own capacity.
"""

import asyncio
import contextlib
import socket
import uuid

# Headers and body of one request are read whole before answering; more than this is refused.
MAX_REQUEST_BYTES = 1 << 20


def dead_url() -> str:
    """A loopback URL where nothing listens: every attempt is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The socket is closed again, so connecting to it is refused (nothing reuses it this fast).
    return f"http://127.0.0.1:{port}/rest/events"


class SlowReceiver:
    """An HTTP/1.1 receiver on loopback that answers every POST with 200 after `delay` s."""

    def __init__(self, *, delay: float) -> None:
        self.delay = delay
        self.answered = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/rest/events"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in self._writers:  # kept-alive connections end with the receiver
                writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ValueError):
            while await self._answer_one(reader, writer):
                pass
        self._writers.discard(writer)
        writer.close()

    async def _answer_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length > MAX_REQUEST_BYTES:
            return False
        await reader.readexactly(length)
        await asyncio.sleep(self.delay)
        if writer.is_closing():  # the worker gave up waiting and hung up (uvloop would raise)
            return False
        body = b'{"id": "%s"}' % str(uuid.uuid4()).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        self.answered += 1
        return True
