"""Helpers shared by tests: a signed edge node and signed request headers."""

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

import msgspec

from edge.signing import RequestSigner
from hub.identity import CameraCreate, NodeRead

BASE_URL = "http://testserver.local"

# The cameras tests post events for, registered to the test node (ingest rejects an event for
# a camera its node does not own). The demo cameras lie where the default bundle places them;
# the others in a jurisdiction no recipient has, so nothing is released from them.
TEST_CAMERAS = (
    CameraCreate(camera_id="demo-cam-1", jurisdiction="north"),
    CameraCreate(camera_id="demo-cam-2", jurisdiction="central"),
    CameraCreate(camera_id="demo-cam-3", jurisdiction="central"),
    CameraCreate(camera_id="cam-gate-1", jurisdiction="test-site"),
    CameraCreate(camera_id="cam-other", jurisdiction="test-site"),
    CameraCreate(camera_id="gate-1", jurisdiction="test-site"),
    CameraCreate(camera_id="demo-cam-9", jurisdiction="test-site"),
)


class EdgeNode(msgspec.Struct, frozen=True):
    """A registered node and a signer holding its private key."""

    node: NodeRead
    signer: RequestSigner


def signed_headers(
    signer: RequestSigner,
    *,
    path: str,
    body: bytes,
    content_type: str = "application/json",
    **sign_kwargs: object,
) -> dict[str, str]:
    """Headers for a request signed the way the edge signs it."""
    headers = signer.sign(method="POST", url=f"{BASE_URL}{path}", body=body, **sign_kwargs)
    return {**headers, "Content-Type": content_type}


def repo_root() -> Path:
    """The repository root."""
    return Path(__file__).resolve().parent.parent


class TcpProxy:
    """A loopback TCP proxy we can cut, to take a real dependency "down" for one test
    without touching the shared server. It runs its own event loop in a thread, because
    Litestar's test client may block the test's loop while the app waits on a dependency."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        """Listen on a free loopback port; returns it."""
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self.loop
        ).result(5)
        return int(self.server.sockets[0].getsockname()[1])

    async def cut(self) -> None:
        """Stop accepting and drop every open connection (idempotent)."""
        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(self._cut(), self.loop).result(5)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()

    async def _cut(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in list(self.writers):
            writer.close()
        self.writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers |= {writer, up_writer}
        await asyncio.gather(
            _pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True
        )


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def run_hub(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the real `hub` CLI in a subprocess (off the event loop) and capture its output."""
    command = [sys.executable, "-m", "hub.cli.main", *args]
    return await asyncio.to_thread(
        subprocess.run,
        command,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        check=False,
    )


class ThreadedServer:
    """A real ASGI server (uvicorn) on a free loopback port, in a thread of its own, so
    receivers can be stopped and started again while a test's event loop keeps running."""

    def __init__(self, app: object, *, port: int = 0) -> None:
        self.app = app
        self.port = port or free_port()
        self._server: object | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ThreadedServer":
        import time

        import uvicorn

        # A connection still open at stop (a live socket whose handler waits) must not keep
        # the server running past its test: it would go on working on the session's shared
        # database and Redis prefix and write into the next tests' rows.
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=3,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(target=server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True  # type: ignore[attr-defined]
            self._thread.join(timeout=10)
            if self._thread.is_alive():  # still draining: stop without waiting any longer
                self._server.force_exit = True  # type: ignore[attr-defined]
                self._thread.join(timeout=10)
            self._server = None
            if self._thread.is_alive():
                raise RuntimeError(f"the server on port {self.port} did not stop")

    def __enter__(self) -> "ThreadedServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def read_http_request(reader: asyncio.StreamReader) -> bytes:
    """One HTTP/1.1 request off a loopback test server's connection (head and a
    Content-Length body, read and dropped); its head. Raises IncompleteReadError at the end."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    await reader.readexactly(length)
    return head
