"""The demo agency's SOAP 1.1 receiver: `AgencyIntake.SubmitDetection` (document/literal).

It checks what the hub sends the way a careful agency would: XML parsed only through
`parse_untrusted`, the Body's payload validated against the WSDL's own schema, and the
WS-Addressing `MessageID` (`urn:uuid:<deliveryId>`) used as the idempotency key. Every refusal
is a SOAP 1.1 fault with HTTP 500; fault text never quotes the record.
"""

import uuid
from dataclasses import dataclass
from importlib.resources import files
from typing import Any, Literal

import msgspec
import xmlschema
from litestar import Request, Router, get, post
from litestar.response import Response
from lxml import etree
from lxml.builder import ElementMaker

from hub.demo_agency.app import PATHS
from hub.demo_agency.inbox import Inbox, Received, now
from hub.demo_agency.options import ReceiverOptions
from hub.kit.xmlsafe import UnsafeXMLError, parse_untrusted

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSA = "http://www.w3.org/2005/08/addressing"
TNS = "urn:hub:demo-agency:intake:v1"
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
XSD = "http://www.w3.org/2001/XMLSchema"

# The record may be 256 KiB of JSON (the schema's bound); the envelope around it is small.
MAX_BODY_BYTES = 512 * 1024
# Receipt ids derive from the delivery id, so a repeated delivery gets the same receipt.
RECEIPT_NAMESPACE = uuid.UUID("2b4f7a52-3c1e-4d0a-9a57-0d6f1c9e8b31")
XML_MEDIA_TYPE = "text/xml; charset=utf-8"

FaultCode = Literal["VersionMismatch", "Client", "Server"]

_ENV = ElementMaker(namespace=SOAP_ENV, nsmap={"soap": SOAP_ENV})
_TNS = ElementMaker(namespace=TNS, nsmap={"tns": TNS})
_PLAIN = ElementMaker()


class SoapFaultError(Exception):
    """A request this receiver refuses; becomes a SOAP fault with `code`."""

    def __init__(self, code: FaultCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class IntakeService:
    """The WSDL as served (address rewritten) and the schema its payloads must match."""

    wsdl: bytes
    schema: xmlschema.XMLSchema


def load_service(public_base_url: str) -> IntakeService:
    """Read the packaged WSDL, point its soap:address at this receiver, compile its schema."""
    definitions = parse_untrusted(files("hub.demo_agency").joinpath("agency.wsdl").read_bytes())
    address = public_base_url.rstrip("/") + PATHS["soap"]
    for node in definitions.iter(f"{{{WSDL_SOAP}}}address"):
        node.set("location", address)
    schema_node = definitions.find(f"{{{WSDL_NS}}}types/{{{XSD}}}schema")
    if schema_node is None:
        raise RuntimeError("agency.wsdl has no inline schema")
    # allow="none": the schema is self-contained; nothing may be fetched while compiling it.
    schema = xmlschema.XMLSchema(etree.tostring(schema_node, encoding="unicode"), allow="none")
    return IntakeService(wsdl=_serialise(definitions), schema=schema)


def router(inbox: Inbox, options: ReceiverOptions) -> Router:
    """`GET` serves the WSDL (`?wsdl` or plain); `POST` takes `SubmitDetection` calls."""
    service = load_service(options.public_base_url)

    @get("/", sync_to_thread=False)
    def wsdl() -> Response[bytes]:
        return Response(service.wsdl, media_type=XML_MEDIA_TYPE)

    @post("/", request_max_body_size=MAX_BODY_BYTES, status_code=200)
    async def submit(request: Request[Any, Any, Any]) -> Response[bytes]:
        try:
            answer = submit_detection(await request.body(), service=service, inbox=inbox)
        except SoapFaultError as fault:
            return Response(fault_envelope(fault), status_code=500, media_type=XML_MEDIA_TYPE)
        return Response(answer, media_type=XML_MEDIA_TYPE)

    return Router(path=PATHS["soap"], route_handlers=[wsdl, submit])


def submit_detection(body: bytes, *, service: IntakeService, inbox: Inbox) -> bytes:
    """Check one SOAP request, record it in the inbox and return the response envelope."""
    try:
        payload, message_id = _payload_and_message_id(body)
        _validate(payload, service.schema)
        delivery_id = _text(payload, "deliveryId") or ""
        if message_id != f"urn:uuid:{delivery_id}":
            raise SoapFaultError("Client", "wsa:MessageID must be urn:uuid:<deliveryId>")
        record = _record(payload)
    except SoapFaultError as fault:
        if fault.code != "VersionMismatch":
            inbox.reject()
        raise
    _raise_injected_failure(inbox.take_failure())
    first = inbox.accept(
        Received(
            kind="soap",
            delivery_id=delivery_id,
            event_id=_text(payload, "eventId"),
            record=record,
            at=now(),
            test=_text(payload, "test") in ("true", "1"),
        ),
        raw=body,
    )
    return response_envelope(delivery_id, duplicate=not first)


def _payload_and_message_id(body: bytes) -> tuple[etree._Element, str | None]:
    """The one element inside soap:Body and the wsa:MessageID header, if any."""
    try:
        envelope = parse_untrusted(body, max_bytes=MAX_BODY_BYTES)
    except UnsafeXMLError as exc:
        raise SoapFaultError("Client", f"request refused: {exc}") from None
    if envelope.tag != f"{{{SOAP_ENV}}}Envelope":
        raise SoapFaultError("VersionMismatch", "expected a SOAP 1.1 Envelope")
    payloads = envelope.findall(f"{{{SOAP_ENV}}}Body/*")
    if len(payloads) != 1 or payloads[0].tag != f"{{{TNS}}}SubmitDetection":
        raise SoapFaultError("Client", "soap:Body must hold exactly one tns:SubmitDetection")
    message_id = envelope.findtext(f"{{{SOAP_ENV}}}Header/{{{WSA}}}MessageID")
    return payloads[0], message_id.strip() if message_id else None


def _validate(payload: etree._Element, schema: xmlschema.XMLSchema) -> None:
    """Refuse a payload that does not match the WSDL's schema; name where, not what."""
    error = next(iter(schema.iter_errors(payload)), None)
    if error is not None:
        # xmlschema's reason quotes the offending value, which may be personal data.
        where = error.path or "SubmitDetection"
        raise SoapFaultError("Client", f"schema violation at {where}"[:300])


def _record(payload: etree._Element) -> dict[str, Any]:
    """The released record, decoded from its JSON text (the schema only checks its length)."""
    try:
        record = msgspec.json.decode(_text(payload, "record") or "")
    except msgspec.DecodeError:
        raise SoapFaultError("Client", "record is not valid JSON") from None
    if not isinstance(record, dict):
        raise SoapFaultError("Client", "record must be a JSON object")
    return record


def _raise_injected_failure(status: int | None) -> None:
    """Fake the failure a test queued: 4xx is the caller's fault, anything else ours."""
    if status is None:
        return
    if 400 <= status < 500:
        raise SoapFaultError("Client", f"injected failure ({status})")
    raise SoapFaultError("Server", f"injected failure ({status}), try again later")


def _text(payload: etree._Element, name: str) -> str | None:
    value = payload.findtext(f"{{{TNS}}}{name}")
    return value.strip() if value is not None else None


def response_envelope(delivery_id: str, *, duplicate: bool) -> bytes:
    """`SubmitDetectionResponse` with a receipt id that is stable per delivery id."""
    receipt = f"AI-{uuid.uuid5(RECEIPT_NAMESPACE, delivery_id)}"
    answer = _TNS.SubmitDetectionResponse(
        _TNS.receiptId(receipt), _TNS.duplicate("true" if duplicate else "false")
    )
    return _serialise(_ENV.Envelope(_ENV.Body(answer)))


def fault_envelope(fault: SoapFaultError) -> bytes:
    """A SOAP 1.1 Fault (`soap:Client`, `soap:Server` or `soap:VersionMismatch`)."""
    # SOAP 1.1 keeps faultcode and faultstring unqualified.
    body = _ENV.Fault(_PLAIN.faultcode(f"soap:{fault.code}"), _PLAIN.faultstring(fault.reason))
    return _serialise(_ENV.Envelope(_ENV.Body(body)))


def _serialise(envelope: etree._Element) -> bytes:
    data: bytes = etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
    return data
