"""The demo agency's XML receiver: signed CAP 1.2 alerts in, one acknowledgement per alert.

It checks what a careful agency would, cheapest first: body size, safe parsing (no DTDs,
entities or network), the CAP schema, then the XML-DSig signature against the one
certificate it trusts. It reads the alert only from the signed content the verifier hands
back, never from the raw tree. A repeated identifier is acknowledged again with the same
receipt id (idempotent receiver) and counted by the inbox.
"""

import asyncio
import uuid
from typing import Any

import msgspec
from cryptography import x509
from litestar import Request, Router, post
from litestar.response import Response
from lxml import etree

from adapters.xml.cap import (
    RECORD_PARAMETER,
    AlertContent,
    CapSchemaError,
    load_schema,
    read_alert,
    validate_alert,
)
from adapters.xml.signing import AlertSignatureError, verify_alert
from hub.demo_agency.inbox import Inbox, Received, now
from hub.demo_agency.options import ReceiverOptions
from hub.kit.xmlsafe import MAX_XML_BYTES, UnsafeXMLError, parse_untrusted

# Receipt ids derive from the alert identifier, so a repeat gets the same receipt.
RECEIPT_NAMESPACE = uuid.UUID("0d6f3b8e-52c1-4f7a-8e0b-6a3c2d9f41e5")


class Refusal(msgspec.Struct, frozen=True):
    """Why an alert was not taken, as the HTTP status and error code to answer."""

    status: int
    code: str


class Ack(msgspec.Struct, frozen=True, kw_only=True):
    """The receiver's answer: its receipt id, the alert identifier, and whether it is a repeat."""

    receipt_id: str
    identifier: str
    duplicate: bool


def router(inbox: Inbox, options: ReceiverOptions) -> Router:
    """`POST /xml/alerts`, trusting only alerts signed by `options.xml_trusted_cert_pem`."""
    schema = load_schema()  # once: parsing the XSD costs far more than a validation
    pem = options.xml_trusted_cert_pem
    trusted = x509.load_pem_x509_certificate(pem) if pem else None

    @post("/alerts", request_max_body_size=MAX_XML_BYTES, status_code=200)
    async def receive_alert(request: Request[Any, Any, Any]) -> Response[bytes]:
        if not request.content_type[0].endswith("xml"):
            inbox.reject()
            return _error(415, "expected_xml")
        body = await request.body()
        # Parsing, validating and verifying cost a few ms of CPU; keep the loop serving.
        outcome = await asyncio.to_thread(check_alert, body, schema=schema, trusted=trusted)
        if isinstance(outcome, Refusal):
            inbox.reject()
            return _error(outcome.status, outcome.code)
        return _acknowledge(inbox, outcome, body)

    return Router(path="/xml", route_handlers=[receive_alert])


def check_alert(
    body: bytes, *, schema: etree.XMLSchema, trusted: x509.Certificate | None
) -> AlertContent | Refusal:
    """The alert's signed content, or why it is refused (400 unreadable, 401 not signed by
    the trusted key, 403 when no key is trusted at all)."""
    try:
        root = parse_untrusted(body)
    except UnsafeXMLError:
        return Refusal(400, "unsafe_or_malformed_xml")
    try:
        validate_alert(schema, root)
    except CapSchemaError:
        return Refusal(400, "invalid_cap_alert")
    if trusted is None:
        return Refusal(403, "no_trusted_certificate")
    try:
        signed = verify_alert(root, trusted)
    except AlertSignatureError:
        return Refusal(401, "invalid_signature")
    return read_alert(signed)


def _acknowledge(inbox: Inbox, alert: AlertContent, body: bytes) -> Response[bytes]:
    """Record the alert (or fake an injected failure) and answer with the receipt."""
    failure = inbox.take_failure()
    if failure is not None:
        headers = {"retry-after": "1"} if failure in (429, 503) else {}
        return _error(failure, "injected_failure", headers)
    parameters = {k: v for k, v in alert.parameters.items() if k != RECORD_PARAMETER}
    first = inbox.accept(
        Received(
            kind="xml",
            delivery_id=alert.identifier,
            event_id=alert.parameters.get("event_id"),
            record=alert.record if alert.record is not None else dict(parameters),
            at=now(),
            test=alert.status == "Test",
        ),
        raw=body,
    )
    receipt = str(uuid.uuid5(RECEIPT_NAMESPACE, alert.identifier))
    ack = Ack(receipt_id=receipt, identifier=alert.identifier, duplicate=not first)
    return _json(200, ack)


def _json(status: int, content: object, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(
        msgspec.json.encode(content),
        status_code=status,
        media_type="application/json",
        headers=headers or {},
    )


def _error(status: int, code: str, headers: dict[str, str] | None = None) -> Response[bytes]:
    return _json(status, {"error": code}, headers)
