"""The XML (signed CAP 1.2) adapter against the real demo XML receiver on loopback."""

import asyncio
import re
import stat
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar, Request, post
from litestar.response import Response
from lxml import etree

from adapters.base import ConfigError, Message, PermanentError, RetryableError
from adapters.egress import EgressGuard
from adapters.registry import installed_kinds, load_adapters
from adapters.xml import XmlAdapter, XmlConfig, create, generate_signing_identity
from adapters.xml.cap import CAP_NS, load_schema
from hub.demo_agency.app import PATHS, create_receiver_app
from hub.demo_agency.inbox import Inbox
from hub.demo_agency.options import ReceiverOptions
from tests.support import ThreadedServer, free_port

LOOPBACK = EgressGuard(allowed_networks=["127.0.0.1/32"])  # receivers listen here

# hub/demo_agency/app.py's `/_inbox/fail` handler takes `data` without a body marker, which
# Litestar 2.25 deprecates; drop this once that handler says `data: JSONBody[FailRequest]`.

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
CAP = {"cap": CAP_NS}


def detection_record(*, plate: bool = True) -> dict[str, Any]:
    """A released detection record; `plate=False` is what the `anonymous` profile leaves."""
    car: dict[str, Any] = {
        "label": "car",
        "confidence": 0.93,
        "box": {"x": 0.1, "y": 0.2, "width": 0.3, "height": 0.2},
        "attributes": {"plate_text": "AB-123-CD"} if plate else {},
    }
    if plate:
        car["track_id"] = "t-7"
    return {
        "event_id": str(uuid.uuid4()),
        "node_id": str(uuid.uuid4()),
        "camera_id": "demo-cam-1",
        "captured_at": "2026-11-22T10:00:00+00:00",
        "model_name": "yolo-n",
        "model_version": "8.1",
        "detections": [car],
        "media": [],
    }


def make_message(**overrides: Any) -> Message:
    """A released message with a fresh delivery id."""
    record = detection_record()
    fields: dict[str, Any] = {
        "delivery_id": uuid.uuid4(),
        "agency": "police-north",
        "attempt": 1,
        "decision_id": "dec-1",
        "record": record,
        "trace_context": {"traceparent": TRACEPARENT},
    }
    return Message(**(fields | overrides))


def xml_config(url: str, files: tuple[Path, Path], **extra: Any) -> dict[str, Any]:
    """A raw adapter configuration as an agency registration holds it."""
    key, cert = files
    return {
        "url": url,
        "signing_key_file": str(key),
        "signing_cert_file": str(cert),
        "timeout_seconds": 5,
        **extra,
    }


@pytest.fixture(scope="module")
def hub_identity(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The key and certificate the hub signs with (the receiver trusts this one)."""
    return generate_signing_identity(tmp_path_factory.mktemp("hub-keys"), "hub.local")


@pytest.fixture(scope="module")
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture(scope="module")
def receiver_url(hub_identity: tuple[Path, Path], inbox: Inbox) -> Iterator[str]:
    """A real demo XML receiver on loopback, trusting the hub's certificate."""
    options = ReceiverOptions(xml_trusted_cert_pem=hub_identity[1].read_bytes())
    with ThreadedServer(create_receiver_app(["xml"], options, inbox=inbox)) as server:
        yield server.url + PATHS["xml"]


@pytest.fixture(autouse=True)
def _empty_inbox(inbox: Inbox) -> None:
    inbox.clear()


@pytest.fixture
async def adapter() -> AsyncIterator[XmlAdapter]:
    xml = XmlAdapter(egress=LOOPBACK)
    yield xml
    await xml.aclose()


async def test_entry_point_finds_the_xml_adapter() -> None:
    assert "xml" in installed_kinds()
    adapters = load_adapters(LOOPBACK)
    try:
        assert isinstance(adapters["xml"], XmlAdapter)
        assert adapters["xml"].kind == "xml"
    finally:
        for found in adapters.values():
            await found.aclose()


async def test_delivers_a_signed_alert_the_receiver_verifies(
    adapter: XmlAdapter, receiver_url: str, hub_identity: tuple[Path, Path], inbox: Inbox
) -> None:
    message = make_message()
    config = adapter.parse_config(xml_config(receiver_url, hub_identity))

    receipt = await adapter.deliver(message, config)

    assert receipt.status_code == 200
    assert receipt.reference
    [item] = inbox.items()
    assert item.kind == "xml"
    assert item.delivery_id == str(message.delivery_id)
    assert item.event_id == message.record["event_id"]
    assert item.record == message.record
    assert item.test is False
    assert inbox.summary().rejected == 0


async def test_redacted_field_is_absent_from_the_document_and_the_inbox(
    adapter: XmlAdapter, receiver_url: str, hub_identity: tuple[Path, Path], inbox: Inbox
) -> None:
    config = adapter.parse_config(xml_config(receiver_url, hub_identity))
    redacted = make_message(record=detection_record(plate=False))
    in_clear = make_message(record=detection_record(plate=True))
    identity = adapter._identity(config)

    assert b"plate_text" not in adapter.render(redacted, sender=config.sender, identity=identity)
    assert b"track_id" not in adapter.render(redacted, sender=config.sender, identity=identity)
    assert b"AB-123-CD" in adapter.render(in_clear, sender=config.sender, identity=identity)
    await adapter.deliver(redacted, config)
    [item] = inbox.items()
    assert item.record == redacted.record
    assert "plate_text" not in item.record["detections"][0]["attributes"]


async def test_document_is_a_valid_cap_alert(
    adapter: XmlAdapter, hub_identity: tuple[Path, Path]
) -> None:
    config = adapter.parse_config(xml_config("http://127.0.0.1:1/x", hub_identity))
    message = make_message(test=True)

    body = adapter.render(message, sender=config.sender, identity=adapter._identity(config))

    root = etree.fromstring(body)
    assert load_schema().validate(root)
    assert root.findtext("cap:identifier", namespaces=CAP) == str(message.delivery_id)
    assert root.findtext("cap:status", namespaces=CAP) == "Test"
    assert root.findtext("cap:scope", namespaces=CAP) == "Restricted"
    assert root.findtext("cap:info/cap:category", namespaces=CAP) == "Security"
    assert root.findtext("cap:info/cap:event", namespaces=CAP) == "Camera detection: car"
    sent = root.findtext("cap:sent", namespaces=CAP) or ""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", sent)
    assert etree.QName(root[-1]).localname == "Signature"


async def test_concurrent_deliveries_from_a_cold_adapter_all_arrive(
    receiver_url: str, hub_identity: tuple[Path, Path], inbox: Inbox
) -> None:
    # Documents are built, signed and validated in worker threads, all with one compiled
    # schema (libxml2 validation is thread-safe once the schema is compiled).
    cold = XmlAdapter(egress=LOOPBACK)
    try:
        config = cold.parse_config(xml_config(receiver_url, hub_identity))
        messages = [make_message() for _ in range(40)]
        receipts = await asyncio.gather(*(cold.deliver(m, config) for m in messages))
    finally:
        await cold.aclose()

    assert {r.status_code for r in receipts} == {200}
    assert inbox.summary().unique == 40
    assert inbox.summary().rejected == 0


async def test_a_resend_has_the_same_identifier_and_counts_as_duplicate(
    adapter: XmlAdapter, receiver_url: str, hub_identity: tuple[Path, Path], inbox: Inbox
) -> None:
    message = make_message()
    config = adapter.parse_config(xml_config(receiver_url, hub_identity))

    first = await adapter.deliver(message, config)
    second = await adapter.deliver(message, config)

    assert first.reference == second.reference
    assert inbox.count_of(str(message.delivery_id)) == 2
    assert inbox.summary().duplicates == 1


async def test_a_key_the_receiver_does_not_trust_is_refused(
    adapter: XmlAdapter, receiver_url: str, tmp_path: Path, inbox: Inbox
) -> None:
    stranger = generate_signing_identity(tmp_path, "stranger.local")
    config = adapter.parse_config(xml_config(receiver_url, stranger))

    with pytest.raises(PermanentError) as raised:
        await adapter.deliver(make_message(), config)

    assert raised.value.status_code == 401
    assert inbox.items() == []
    assert inbox.summary().rejected == 1


async def test_a_schema_invalid_document_never_leaves(
    adapter: XmlAdapter, receiver_url: str, hub_identity: tuple[Path, Path], inbox: Inbox
) -> None:
    key, cert = hub_identity
    # Bypasses parse_config on purpose: a sender with a space breaks CAP's sender rule.
    config = XmlConfig(
        url=receiver_url, signing_key_file=str(key), signing_cert_file=str(cert), sender="a b"
    )

    with pytest.raises(PermanentError, match=r"CAP 1\.2"):
        await adapter.deliver(make_message(), config)

    assert inbox.summary().received == 0
    assert inbox.summary().rejected == 0


@pytest.mark.parametrize(
    ("status", "error", "retry_after"),
    [
        (500, RetryableError, None),
        (503, RetryableError, 1.0),
        (429, RetryableError, 1.0),
        (400, PermanentError, None),
        (404, PermanentError, None),
    ],
)
async def test_agency_statuses_are_classified(
    adapter: XmlAdapter,
    receiver_url: str,
    hub_identity: tuple[Path, Path],
    inbox: Inbox,
    status: int,
    error: type[Exception],
    retry_after: float | None,
) -> None:
    inbox.fail_next(1, status)
    config = adapter.parse_config(xml_config(receiver_url, hub_identity))

    with pytest.raises(error) as raised:
        await adapter.deliver(make_message(), config)

    assert getattr(raised.value, "status_code", None) == status
    assert getattr(raised.value, "retry_after", None) == retry_after
    assert inbox.items() == []


async def test_receiver_down_is_retryable(
    adapter: XmlAdapter, hub_identity: tuple[Path, Path]
) -> None:
    url = f"http://127.0.0.1:{free_port()}/xml/alerts"
    config = adapter.parse_config(xml_config(url, hub_identity))

    with pytest.raises(RetryableError, match="cannot reach the agency"):
        await adapter.deliver(make_message(), config)


async def test_a_silent_agency_times_out_as_retryable(
    adapter: XmlAdapter, hub_identity: tuple[Path, Path]
) -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 16)
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = adapter.parse_config(
        xml_config(f"http://127.0.0.1:{port}/", hub_identity, timeout_seconds=0.3)
    )
    try:
        with pytest.raises(RetryableError, match="did not answer within"):
            await adapter.deliver(make_message(), config)
    finally:
        server.close()


@pytest.mark.parametrize(
    ("media_type", "answer"),
    [
        ("application/json", b'{"reference": "agency-ref-1"}'),
        ("application/xml", b"<ack><receipt_id>agency-ref-1</receipt_id></ack>"),
    ],
)
async def test_headers_sent_and_reference_read_from_the_ack(
    adapter: XmlAdapter, hub_identity: tuple[Path, Path], media_type: str, answer: bytes
) -> None:
    seen: list[dict[str, str]] = []

    @post("/cap", status_code=200)
    async def take(request: Request[Any, Any, Any]) -> Response[bytes]:
        seen.append(dict(request.headers))
        return Response(answer, media_type=media_type)

    message = make_message()
    with ThreadedServer(Litestar([take], openapi_config=None)) as server:
        config = adapter.parse_config(xml_config(server.url + "/cap", hub_identity))
        receipt = await adapter.deliver(message, config)

    assert receipt.reference == "agency-ref-1"
    [headers] = seen
    assert headers["idempotency-key"] == str(message.delivery_id)
    assert headers["traceparent"] == TRACEPARENT
    assert headers["content-type"] == "application/cap+xml"


async def test_a_replaced_key_file_is_picked_up_without_a_restart(
    adapter: XmlAdapter, receiver_url: str, hub_identity: tuple[Path, Path], tmp_path: Path
) -> None:
    key, cert = tmp_path / "live.key.pem", tmp_path / "live.cert.pem"
    key.write_bytes(hub_identity[0].read_bytes())
    cert.write_bytes(hub_identity[1].read_bytes())
    config = adapter.parse_config(xml_config(receiver_url, (key, cert)))
    await adapter.deliver(make_message(), config)
    new_key, new_cert = generate_signing_identity(tmp_path / "rotated", "rotated")
    new_key.replace(key)
    new_cert.replace(cert)

    # The receiver still trusts only the old certificate, so the new key shows as a 401.
    with pytest.raises(PermanentError) as raised:
        await adapter.deliver(make_message(), config)

    assert raised.value.status_code == 401


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"url": None}, "url"),
        ({"url": "ftp://agency.example/cap"}, "url"),
        ({"url": "https://user:pw@agency.example/cap"}, "url"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"timeout_seconds": 1000}, "timeout_seconds"),
        ({"sender": "hub at example"}, "sender"),
        ({"signing_key_file": "/nonexistent/key.pem"}, "signing_key_file"),
        ({"signing_cert_file": None}, "signing_cert_file"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_config_errors_name_the_field(
    adapter: XmlAdapter, hub_identity: tuple[Path, Path], change: dict[str, Any], field: str
) -> None:
    raw = xml_config("https://agency.example/cap", hub_identity) | change
    raw = {k: v for k, v in raw.items() if v is not None}

    with pytest.raises(ConfigError, match=field):
        adapter.parse_config(raw)


def test_a_certificate_of_another_key_is_refused(
    adapter: XmlAdapter, hub_identity: tuple[Path, Path], tmp_path: Path
) -> None:
    _, other_cert = generate_signing_identity(tmp_path, "other")
    raw = xml_config("https://agency.example/cap", (hub_identity[0], other_cert))

    with pytest.raises(ConfigError, match="signing_cert_file"):
        adapter.parse_config(raw)


def test_config_defaults_and_endpoint(adapter: XmlAdapter, hub_identity: tuple[Path, Path]) -> None:
    raw = xml_config("https://agency.example/cap", hub_identity)
    del raw["timeout_seconds"]

    config = adapter.parse_config(raw)

    assert config.timeout_seconds == 10
    assert config.sender == "hub@hub.local"
    assert adapter.endpoint(config) == "https://agency.example/cap"


def test_key_generation_is_private_and_never_overwrites(tmp_path: Path) -> None:
    key, cert = generate_signing_identity(tmp_path / "keys", "agency one")
    before = (key.read_bytes(), cert.read_bytes())

    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.name == "agency-one.key.pem"
    with pytest.raises(FileExistsError):
        generate_signing_identity(tmp_path / "keys", "agency one")
    assert (key.read_bytes(), cert.read_bytes()) == before


def test_key_generation_leaves_an_existing_certificate_alone(tmp_path: Path) -> None:
    (tmp_path / "ca.cert.pem").write_bytes(b"existing")

    with pytest.raises(FileExistsError):
        generate_signing_identity(tmp_path, "ca")

    assert not (tmp_path / "ca.key.pem").exists()
    assert (tmp_path / "ca.cert.pem").read_bytes() == b"existing"


async def test_create_returns_a_fresh_adapter() -> None:
    made = create(egress=LOOPBACK)
    try:
        assert isinstance(made, XmlAdapter)
    finally:
        await made.aclose()
