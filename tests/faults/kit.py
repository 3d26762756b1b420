"""Helpers of the fault tests: a TCP proxy that can be cut and restored on the same port, and
demo agency receivers that hang or answer slowly on command."""

import asyncio
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hub.delivery.agencies import add_agency
from hub.delivery.schemas import AgencyCreate, AgencyRead, Subscription
from hub.runtime import Services
from tests.hub.delivery.harness import AGENCIES, Receivers


def through(url: str, port: int) -> str:
    """`url` with its host and port replaced by the loopback proxy's."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host).geturl()


class RestorableProxy:
    """A loopback TCP proxy on a fixed port that can be cut (listener closed, every open
    connection dropped) and restored (listening again on the same port), any number of
    times. Its event loop runs in a thread of its own for the whole life of the proxy."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def start(self) -> int:
        """Listen on a free loopback port; returns it."""
        self.thread.start()
        self._call(self._listen())
        return self.port

    def cut(self) -> None:
        """Stop accepting and drop every open connection (idempotent)."""
        self._call(self._cut())

    def restore(self) -> None:
        """Listen again on the same port."""
        self._call(self._listen())

    def close(self) -> None:
        """Cut and stop the proxy's loop for good."""
        if self.loop.is_running():
            self.cut()
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()

    async def _listen(self) -> None:
        if self.server is None:
            self.server = await asyncio.start_server(
                self._serve, "127.0.0.1", self.port, reuse_address=True
            )
            self.port = int(self.server.sockets[0].getsockname()[1])

    async def _cut(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for writer in list(self.writers):
            writer.close()
        self.writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}
        await asyncio.gather(
            _pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True
        )
        self.writers -= {writer, up_writer}


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


class FaultyAgency:
    """ASGI wrapper of the demo receivers: the next `hang` deliveries (POSTs) are held for
    `hang_seconds` and then answered 504 without reaching the receiver (the agency timed out
    and processed nothing); every delivery is delayed by `delay` seconds before the receiver
    sees it (a slow agency)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.hang = 0
        self.hang_seconds = 0.0
        self.hung = 0
        self.delay = 0.0

    def hang_next(self, count: int, seconds: float) -> None:
        with self.lock:
            self.hang, self.hang_seconds = count, seconds

    def _take_hang(self) -> bool:
        with self.lock:
            if self.hang > 0:
                self.hang -= 1
                self.hung += 1
                return True
            return False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        delivery = (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and not scope["path"].startswith("/_inbox")
        )
        if delivery and self._take_hang():
            await asyncio.sleep(self.hang_seconds)
            await send({"type": "http.response.start", "status": 504, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        if delivery and self.delay:
            await asyncio.sleep(self.delay)
        await self.app(scope, receive, send)


class FaultyReceivers(Receivers):
    """The demo receivers (REST, SOAP, XML) behind a `FaultyAgency`."""

    def __init__(self, keys_dir: Path) -> None:
        super().__init__(keys_dir)
        self.faults = FaultyAgency(self.app)
        self.app = self.faults


async def register_with(
    services: Services,
    receivers: Receivers,
    names: tuple[str, ...] = tuple(AGENCIES),
    *,
    timeout_seconds: float = 5,
    **overrides: Any,
) -> dict[str, AgencyRead]:
    """Register agencies of the default bundle with a given adapter timeout."""
    found = {}
    for name in names:
        kind, purpose, jurisdictions, clearance = AGENCIES[name]
        create = AgencyCreate(
            name=name,
            kind=kind,
            config={**receivers.config(kind), "timeout_seconds": timeout_seconds},
            subscription=Subscription(purpose=purpose),
            jurisdictions=jurisdictions,
            clearance=clearance,
            **overrides,
        )
        found[name] = await add_agency(
            services.db, services.delivery.adapters, create, actor="test"
        )
    return found
