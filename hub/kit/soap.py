"""SOAP 1.1 document/literal plumbing shared by the hub's SOAP services (no business here).

Requests are parsed only through `parse_untrusted` (no DTDs, entities or network), their size
in elements, attributes and depth is bounded (`check_shape`), the one payload element in
`soap:Body` is validated against the WSDL's own inline schema by libxml2 (milliseconds where
xmlschema took minutes on a body of many attributes), and every refusal becomes a SOAP 1.1
Fault whose text never quotes the request.
"""

from typing import Literal

from lxml import etree
from lxml.builder import ElementMaker

from hub.kit.xmlsafe import UnsafeXMLError, XmlShape, check_shape, parse_untrusted

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
XSD = "http://www.w3.org/2001/XMLSchema"
XML_MEDIA_TYPE = "text/xml; charset=utf-8"

FaultCode = Literal["VersionMismatch", "Client", "Server"]

_ENV = ElementMaker(namespace=SOAP_ENV, nsmap={"soap": SOAP_ENV})
_PLAIN = ElementMaker()


class SoapFaultError(Exception):
    """A request refused with a SOAP fault: `Client` (the caller's fault), `Server` (ours,
    try again) or `VersionMismatch` (not a SOAP 1.1 envelope)."""

    def __init__(self, code: FaultCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def wsdl_at(data: bytes, *, location: str) -> bytes:
    """The WSDL as served: every soap:address pointing at `location`."""
    definitions = parse_untrusted(data)
    for node in definitions.iter(f"{{{WSDL_SOAP}}}address"):
        node.set("location", location)
    return serialise(definitions)


def wsdl_schema(data: bytes) -> etree.XMLSchema:
    """The WSDL's inline schema, compiled by libxml2 with nothing fetched from anywhere.

    One validator is not safe to share between threads: validate in one thread at a time.
    """
    definitions = parse_untrusted(data)
    schema_node = definitions.find(f"{{{WSDL_NS}}}types/{{{XSD}}}schema")
    if schema_node is None:
        raise RuntimeError("the WSDL has no inline schema")
    document = etree.fromstring(
        etree.tostring(schema_node),
        parser=etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False),
    )
    return etree.XMLSchema(document)


def body_payload(
    body: bytes, *, max_bytes: int, shape: XmlShape | None = None
) -> tuple[etree._Element, etree._Element]:
    """The envelope and the one element inside its soap:Body, within `shape`'s bounds."""
    try:
        envelope = parse_untrusted(body, max_bytes=max_bytes)
        check_shape(envelope, shape or XmlShape())
    except UnsafeXMLError as exc:
        raise SoapFaultError("Client", f"request refused: {exc}") from None
    if envelope.tag != f"{{{SOAP_ENV}}}Envelope":
        raise SoapFaultError("VersionMismatch", "expected a SOAP 1.1 Envelope")
    payloads = envelope.findall(f"{{{SOAP_ENV}}}Body/*")
    if len(payloads) != 1:
        raise SoapFaultError("Client", "soap:Body must hold exactly one element")
    return envelope, payloads[0]


def validate(payload: etree._Element, schema: etree.XMLSchema) -> None:
    """Refuse a payload that does not match the schema; say where, never what (libxml2's
    own message quotes the offending value, which may be personal data)."""
    if schema.validate(payload):
        return
    error = schema.error_log.last_error
    where = (error.path if error is not None else None) or etree.QName(payload).localname
    raise SoapFaultError("Client", f"schema violation at {where}"[:300])


def envelope(payload: etree._Element) -> bytes:
    """A SOAP 1.1 envelope around one response element."""
    return serialise(_ENV.Envelope(_ENV.Body(payload)))


def fault_envelope(fault: SoapFaultError) -> bytes:
    """A SOAP 1.1 Fault (faultcode and faultstring unqualified, as SOAP 1.1 has them)."""
    body = _ENV.Fault(_PLAIN.faultcode(f"soap:{fault.code}"), _PLAIN.faultstring(fault.reason))
    return serialise(_ENV.Envelope(_ENV.Body(body)))


def serialise(element: etree._Element) -> bytes:
    """UTF-8 XML with a declaration."""
    data: bytes = etree.tostring(element, xml_declaration=True, encoding="UTF-8")
    return data
