"""The adapters' HTTP/1.1 client (adapters/http11.py, through the guarded transport): kept-alive
connections are reused, a connection the agency hung up is not, silence is a read timeout,
and answers are framed, capped and refused when malformed, on real loopback servers."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
import uvloop

from adapters.egress import EgressGuard, GuardedAsyncTransport, ResponseTooLargeError
from adapters.exchange import exchange
from adapters.http11 import MAX_HEAD_BYTES
from tests.support import read_http_request

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


@dataclass
class Agency:
    """A loopback HTTP/1.1 server that counts connections and can hang up or stay silent."""

    connections: int = 0
    hang_up_after_answer: bool = False
    silent: bool = False
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                await read_http_request(reader)
                if self.silent:
                    await asyncio.sleep(10)
                writer.write(ANSWER)
                await writer.drain()
                if self.hang_up_after_answer:
                    writer.close()  # the agency's keep-alive ends without saying so
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


@pytest.fixture
async def agency() -> AsyncIterator[tuple[Agency, str]]:
    box = Agency()
    server = await asyncio.start_server(box.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield box, f"http://127.0.0.1:{port}/in"
        for writer in box.writers:
            writer.close()


def client() -> httpx.AsyncClient:
    guard = EgressGuard(allowed_networks=["127.0.0.1/32"])
    return httpx.AsyncClient(transport=guard.async_transport(), trust_env=False)


async def test_kept_alive_connection_is_reused(agency: tuple[Agency, str]) -> None:
    box, url = agency
    async with client() as http:
        answers = [await http.post(url, content=b"x" * 100) for _ in range(5)]

    assert [a.content for a in answers] == [b"ok"] * 5
    assert box.connections == 1


async def test_a_connection_the_agency_hung_up_is_not_reused(agency: tuple[Agency, str]) -> None:
    box, url = agency
    box.hang_up_after_answer = True
    async with client() as http:
        first = await http.post(url, content=b"one")
        await asyncio.sleep(0.05)  # the hang-up reaches us while the connection is idle
        second = await http.post(url, content=b"two")

    assert (first.content, second.content) == (b"ok", b"ok")
    assert box.connections == 2


async def test_a_hang_up_not_yet_read_by_the_loop_is_seen_before_reuse(
    agency: tuple[Agency, str],
) -> None:
    box, url = agency
    async with client() as http:
        await http.post(url, content=b"one")
        # Close the server's side now and ask again at once: the loop has not run since.
        for writer in box.writers:
            writer.transport.abort()
        await asyncio.sleep(0)  # the abort is sent; nothing of ours has read it
        second = await http.post(url, content=b"two")

    assert second.content == b"ok"
    assert box.connections == 2


async def test_silence_is_a_read_timeout(agency: tuple[Agency, str]) -> None:
    box, url = agency
    box.silent = True
    async with client() as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post(url, content=b"x", timeout=0.2)


async def test_exchange_reads_at_most_its_bound_and_says_so(agency: tuple[Agency, str]) -> None:
    _, url = agency
    transport = EgressGuard(allowed_networks=["127.0.0.1/32"]).async_transport()
    try:
        whole = await exchange(transport, url, content=b"x", headers={}, timeout=5, max_bytes=2)
        cut = await exchange(transport, url, content=b"x", headers={}, timeout=5, max_bytes=1)
    finally:
        await transport.aclose()

    assert (whole.status_code, whole.body, whole.truncated) == (200, b"ok", False)
    assert (cut.body, cut.truncated) == (b"o", True)


async def test_the_pool_holds_at_most_its_connections_and_reuses_them(
    agency: tuple[Agency, str],
) -> None:
    box, url = agency
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
    guard = EgressGuard(allowed_networks=["127.0.0.1/32"])
    async with httpx.AsyncClient(transport=guard.async_transport(limits=limits)) as http:
        for _ in range(3):
            answers = await asyncio.gather(*(http.post(url, content=b"x") for _ in range(6)))
            assert [a.content for a in answers] == [b"ok"] * 6

    assert box.connections == 2


async def test_a_request_waits_for_a_free_connection_no_longer_than_its_pool_timeout(
    agency: tuple[Agency, str],
) -> None:
    box, url = agency
    box.silent = True
    limits = httpx.Limits(max_connections=1)
    guard = EgressGuard(allowed_networks=["127.0.0.1/32"])
    async with httpx.AsyncClient(transport=guard.async_transport(limits=limits)) as http:
        held = asyncio.create_task(http.post(url, content=b"x", timeout=5))
        await asyncio.sleep(0.1)
        with pytest.raises(httpx.PoolTimeout):
            await http.post(url, content=b"x", timeout=httpx.Timeout(5, pool=0.2))
        held.cancel()
        with pytest.raises(asyncio.CancelledError):
            await held
        box.silent = False
        after = await http.post(url, content=b"x", timeout=httpx.Timeout(5, pool=0.5))

    # The cancelled request gave its slot back; its connection, mid-answer, was not reused.
    assert after.content == b"ok"
    assert box.connections == 2


@dataclass
class Scripted:
    """A loopback server that reads one request and answers with the bytes it is given."""

    answer: bytes = b""
    hang_up: bool = False  # close the connection after writing the answer
    connections: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                writer.write(self.answer)
                await writer.drain()
                if self.hang_up:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[Scripted, str]]:
    box = Scripted()
    server = await asyncio.start_server(box.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield box, f"http://127.0.0.1:{port}/in"


def loopback(max_response_bytes: int = 1024) -> GuardedAsyncTransport:
    guard = EgressGuard(allowed_networks=["127.0.0.1/32"])
    return guard.async_transport(max_response_bytes=max_response_bytes)


async def post(transport: GuardedAsyncTransport, url: str) -> tuple[int, bytes]:
    status, _, body = await transport.send("POST", url, content=b"x", headers=(), timeout=2)
    return status, body


async def test_a_chunked_answer_is_read_whole_and_the_connection_kept(
    scripted: tuple[Scripted, str],
) -> None:
    box, url = scripted
    box.answer = (
        b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
    )
    transport = loopback()
    try:
        answers = [await post(transport, url) for _ in range(3)]
    finally:
        await transport.aclose()
    assert answers == [(202, b"abcdefg")] * 3
    assert box.connections == 1


async def test_connection_close_is_honoured(scripted: tuple[Scripted, str]) -> None:
    box, url = scripted
    box.answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    box.hang_up = True
    transport = loopback()
    try:
        answers = [await post(transport, url) for _ in range(2)]
    finally:
        await transport.aclose()
    assert answers == [(200, b"ok")] * 2
    assert box.connections == 2


async def test_a_body_delimited_by_the_connection_end_is_read(
    scripted: tuple[Scripted, str],
) -> None:
    box, url = scripted
    box.answer = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"
    box.hang_up = True
    transport = loopback()
    try:
        assert await post(transport, url) == (200, b"until the end")
    finally:
        await transport.aclose()


async def test_a_close_mid_body_is_a_protocol_error(scripted: tuple[Scripted, str]) -> None:
    box, url = scripted
    box.answer = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf"
    box.hang_up = True
    transport = loopback()
    try:
        with pytest.raises(httpx.RemoteProtocolError, match="mid-answer"):
            await post(transport, url)
    finally:
        await transport.aclose()


async def test_a_close_before_any_answer_is_a_protocol_error(
    scripted: tuple[Scripted, str],
) -> None:
    box, url = scripted
    box.hang_up = True  # answers nothing, hangs up
    transport = loopback()
    try:
        with pytest.raises(httpx.RemoteProtocolError, match="before answering"):
            await post(transport, url)
    finally:
        await transport.aclose()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok",
        b"SMTP ready\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    ],
    ids=["bad-status", "not-http", "two-lengths", "bad-chunk"],
)
async def test_a_malformed_answer_is_a_protocol_error(
    scripted: tuple[Scripted, str], answer: bytes
) -> None:
    box, url = scripted
    box.answer = answer
    transport = loopback()
    try:
        with pytest.raises(httpx.RemoteProtocolError):
            await post(transport, url)
    finally:
        await transport.aclose()


@pytest.mark.parametrize("framing", ["length", "chunked", "until-close"])
async def test_an_answer_past_the_cap_is_refused(
    scripted: tuple[Scripted, str], framing: str
) -> None:
    box, url = scripted
    body = b"y" * 5000
    box.answer = {
        "length": b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + body,
        "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1388\r\n"
        + body
        + b"\r\n0\r\n\r\n",
        "until-close": b"HTTP/1.0 200 OK\r\n\r\n" + body,
    }[framing]
    box.hang_up = framing == "until-close"
    transport = loopback(max_response_bytes=1024)
    try:
        with pytest.raises(ResponseTooLargeError):
            await post(transport, url)
    finally:
        await transport.aclose()


async def test_an_endless_head_is_refused(scripted: tuple[Scripted, str]) -> None:
    box, url = scripted
    box.answer = b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"z" * (MAX_HEAD_BYTES + 10)
    transport = loopback()
    try:
        with pytest.raises(httpx.RemoteProtocolError, match="head is too large"):
            await post(transport, url)
    finally:
        await transport.aclose()


async def test_an_interim_answer_is_skipped(scripted: tuple[Scripted, str]) -> None:
    box, url = scripted
    box.answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nk"
    transport = loopback()
    try:
        assert await post(transport, url) == (201, b"k")
    finally:
        await transport.aclose()


@pytest.mark.parametrize(
    "header", [("X-Trace", "a\r\nX-Injected: 1"), ("Bad Name", "v"), ("X-Nul", "a\0b")]
)
async def test_a_header_that_could_split_the_request_never_leaves(
    scripted: tuple[Scripted, str], header: tuple[str, str]
) -> None:
    box, url = scripted
    transport = loopback()
    try:
        with pytest.raises(httpx.LocalProtocolError):
            await transport.send("POST", url, content=b"x", headers=[header], timeout=2)
    finally:
        await transport.aclose()
    assert box.connections == 0


@pytest.mark.parametrize(("expiry", "connections"), [(0.05, 2), (None, 1)])
async def test_an_idle_connection_past_its_expiry_is_not_reused(
    agency: tuple[Agency, str], expiry: float | None, connections: int
) -> None:
    box, url = agency
    limits = httpx.Limits(keepalive_expiry=expiry)
    transport = EgressGuard(allowed_networks=["127.0.0.1/32"]).async_transport(limits=limits)
    try:
        await post(transport, url)
        await asyncio.sleep(0.15)
        await post(transport, url)
    finally:
        await transport.aclose()
    assert box.connections == connections


def test_the_client_runs_on_uvloop_as_the_worker_does() -> None:
    async def scenario() -> tuple[list[bytes], int]:
        box = Agency()
        server = await asyncio.start_server(box.serve, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/in"
        transport = loopback()
        try:
            answers = [(await post(transport, url))[1] for _ in range(3)]
            for writer in box.writers:  # a hang-up the loop has not read when we reuse
                writer.transport.abort()
            await asyncio.sleep(0)
            answers.append((await post(transport, url))[1])
        finally:
            await transport.aclose()
            for writer in box.writers:
                writer.close()
            server.close()
            await server.wait_closed()
        return answers, box.connections

    answers, connections = uvloop.run(scenario())
    assert answers == [b"ok"] * 4
    assert connections == 2
