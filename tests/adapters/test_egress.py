"""The egress guard: only public addresses unless allow-listed, checked when a name is
registered and again at every connect; credentials never in URLs; answers capped after
decoding. Every server here listens on loopback."""

import gzip
import ipaddress
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar, Request, get, post
from litestar.response import Response

from adapters.base import RetryableError
from adapters.egress import BoundedDecoder, EgressGuard, EgressRefusedError, ResponseTooLargeError
from adapters.xml import XmlAdapter, generate_signing_identity
from tests.adapters.test_xml import make_message
from tests.support import ThreadedServer, free_port

LOOPBACK = EgressGuard(allowed_networks=["127.0.0.1/32"])
# 64 MiB of zeros gzip to about 64 KiB: a bomb small on the wire and huge once inflated.
BOMB = gzip.compress(b"\0" * (64 << 20), compresslevel=9)


class Counting:
    """A loopback HTTP server that counts what reaches it and can answer a gzip bomb."""

    def __init__(self) -> None:
        self.hits = 0

        @get("/hello", sync_to_thread=False)
        def hello() -> Response[bytes]:
            self.hits += 1
            return Response(b'{"ok": true}', media_type="application/json")

        @get("/bomb", sync_to_thread=False)
        def bomb() -> Response[bytes]:
            self.hits += 1
            return Response(BOMB, media_type="application/json", headers=_gzip_headers())

        @post("/alerts", status_code=200)
        async def alerts(request: Request[Any, Any, Any]) -> Response[bytes]:
            await request.body()
            self.hits += 1
            return Response(BOMB, media_type="application/json", headers=_gzip_headers())

        self.server = ThreadedServer(Litestar([hello, bomb, alerts]))

    @property
    def url(self) -> str:
        return self.server.url


def _gzip_headers() -> dict[str, str]:
    return {"content-encoding": "gzip"}


@pytest.fixture(scope="module")
def counting() -> Iterator[Counting]:
    found = Counting()
    found.server.start()
    yield found
    found.server.stop()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "::1",
        "0.0.0.0",  # noqa: S104 - an address to refuse, not to bind
        "169.254.169.254",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "224.0.0.1",
    ],
)
def test_internal_addresses_are_refused_by_default(address: str) -> None:
    assert not EgressGuard().permits(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_permitted(address: str) -> None:
    assert EgressGuard().permits(ipaddress.ip_address(address))


def test_an_allow_listed_network_is_permitted_and_nothing_beside_it() -> None:
    guard = EgressGuard(allowed_networks=["127.0.0.1/32", " 10.9.0.0/16 "])

    assert guard.permits(ipaddress.ip_address("127.0.0.1"))
    assert guard.permits(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert guard.permits(ipaddress.ip_address("10.9.200.1"))
    assert not guard.permits(ipaddress.ip_address("127.0.0.2"))
    assert not guard.permits(ipaddress.ip_address("10.10.0.1"))


def test_a_bad_network_in_the_setting_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="allowed networks"):
        EgressGuard.from_text("127.0.0.1/32,not-a-network", require_https=False)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://hub:s3cret@agency.example/x", "credentials"),
        ("https://token@agency.example/x", "credentials"),
        ("ftp://agency.example/x", "http"),
        ("https:///x", "http"),
        ("http://agency.example/x", "https"),
    ],
)
def test_url_forms_refused_in_production(url: str, reason: str) -> None:
    guard = EgressGuard(require_https=True)

    with pytest.raises(EgressRefusedError, match=reason) as caught:
        guard.check_url(url)
    assert "s3cret" not in str(caught.value)


def test_plain_http_is_accepted_outside_production() -> None:
    assert EgressGuard().check_url("http://agency.example/x").host == "agency.example"


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8101/hook",
        "http://127.0.0.1:8101/hook",
        "http://2130706433:8101/hook",  # 127.0.0.1 written as one decimal number
        "http://0x7f000001:8101/hook",
        "http://[::1]:8101/hook",
        "http://0.0.0.0:8101/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://name.that.does.not.resolve.invalid/hook",
    ],
)
async def test_registration_resolves_the_name_and_refuses_internal_answers(url: str) -> None:
    with pytest.raises(EgressRefusedError):
        await EgressGuard().check_endpoint(url)


async def test_registration_accepts_an_allow_listed_address() -> None:
    await LOOPBACK.check_endpoint("http://127.0.0.1:8101/hook")


async def test_every_connect_is_checked_so_a_name_that_changes_later_gets_nowhere(
    counting: Counting,
) -> None:
    # What registration checked does not matter at connect time: the transport resolves and
    # checks again, and connects only to the address it checked (DNS rebinding gets nowhere).
    for host in ("127.0.0.1", "localhost"):
        url = counting.url.replace("127.0.0.1", host) + "/hello"
        async with httpx.AsyncClient(transport=EgressGuard().async_transport()) as client:
            with pytest.raises(httpx.ConnectError, match="not permitted"):
                await client.get(url)
    assert counting.hits == 0
    async with httpx.AsyncClient(transport=LOOPBACK.async_transport()) as client:
        answer = await client.get(counting.url + "/hello")
    assert answer.json() == {"ok": True}
    assert counting.hits == 1


async def test_credentials_in_a_request_url_never_leave(counting: Counting) -> None:
    url = counting.url.replace("http://", "http://hub:s3cret@") + "/hello"
    before = counting.hits
    async with httpx.AsyncClient(transport=LOOPBACK.async_transport()) as client:
        with pytest.raises(httpx.ConnectError, match="credentials"):
            await client.get(url)
    assert counting.hits == before


def test_the_synchronous_transport_checks_every_connect_too(counting: Counting) -> None:
    before = counting.hits
    with (
        httpx.Client(transport=EgressGuard().sync_transport()) as client,
        pytest.raises(httpx.ConnectError),
    ):
        client.get(counting.url + "/hello")
    assert counting.hits == before
    with httpx.Client(transport=LOOPBACK.sync_transport()) as client:
        assert client.get(counting.url + "/hello").status_code == 200


async def test_a_gzip_bomb_stops_at_the_cap_without_inflating(counting: Counting) -> None:
    transport = LOOPBACK.async_transport(max_response_bytes=64 * 1024)
    tracemalloc.start()
    try:
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(ResponseTooLargeError):
                await client.get(counting.url + "/bomb")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak} bytes while refusing a 64 MiB bomb"


def test_the_synchronous_transport_caps_decoded_answers(counting: Counting) -> None:
    transport = LOOPBACK.sync_transport(max_response_bytes=64 * 1024)
    with httpx.Client(transport=transport) as client, pytest.raises(ResponseTooLargeError):
        client.get(counting.url + "/bomb")


async def test_the_xml_adapter_refuses_a_bombed_answer_as_retryable(
    counting: Counting, tmp_path: Path
) -> None:
    key_file, cert_file = generate_signing_identity(tmp_path, "hub-test")
    adapter = XmlAdapter(egress=LOOPBACK)
    config = adapter.parse_config(
        {
            "url": counting.url + "/alerts",
            "signing_key_file": str(key_file),
            "signing_cert_file": str(cert_file),
        }
    )
    try:
        with pytest.raises(RetryableError, match="larger than"):
            await adapter.deliver(make_message(), config)
    finally:
        await adapter.aclose()


def test_decoder_passes_small_compressed_answers_through() -> None:
    body = b'{"id": "r-1"}' * 10
    gz = BoundedDecoder("gzip", 1000)
    assert gz.feed(gzip.compress(body)) + gz.finish() == body
    deflate = BoundedDecoder("deflate", 1000)
    assert deflate.feed(zlib.compress(body)) + deflate.finish() == body
    plain = BoundedDecoder("identity", len(body))
    assert plain.feed(body) == body
    with pytest.raises(ResponseTooLargeError):
        plain.feed(b"x")


def test_decoder_refuses_encodings_it_cannot_bound() -> None:
    with pytest.raises(httpx.DecodingError, match="br"):
        BoundedDecoder("br", 1000)


def test_a_closed_port_and_a_refused_address_read_the_same_to_the_caller() -> None:
    closed = f"http://127.0.0.1:{free_port()}/x"
    with (
        httpx.Client(transport=LOOPBACK.sync_transport()) as client,
        pytest.raises(httpx.ConnectError) as refused_port,
    ):
        client.get(closed)
    with (
        httpx.Client(transport=EgressGuard().sync_transport()) as client,
        pytest.raises(httpx.ConnectError) as refused_address,
    ):
        client.get(closed)
    assert type(refused_port.value) is type(refused_address.value)
