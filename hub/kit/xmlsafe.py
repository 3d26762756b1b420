"""Parsing XML that came from outside: entities, DTDs and network access off, size bounded.

Every XML document the hub reads (SOAP requests, agency answers, demo receivers) goes through
`parse_untrusted`, so billion-laughs bombs and external entities are refused, not expanded.
"""

from lxml import etree

# Deeper or bigger than any legitimate message of ours; lxml's own hard limits stay on too.
MAX_XML_BYTES = 1 << 20


class UnsafeXMLError(ValueError):
    """The document is not well-formed, too big, or declares a DTD or entities."""


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse_untrusted(data: bytes, *, max_bytes: int = MAX_XML_BYTES) -> etree._Element:
    """The root element of `data`; raises `UnsafeXMLError` for anything we refuse to read."""
    if len(data) > max_bytes:
        raise UnsafeXMLError(f"XML document larger than {max_bytes} bytes")
    # A DOCTYPE is how entity bombs and external entities get in; none of our formats has one.
    lowered = data.lower()
    if b"<!doctype" in lowered or b"<!entity" in lowered:
        raise UnsafeXMLError("XML documents with a DOCTYPE or entity declarations are refused")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise UnsafeXMLError(f"malformed XML: {exc.msg}") from None
    if root.getroottree().docinfo.doctype:
        raise UnsafeXMLError("XML documents with a DOCTYPE are refused")
    return root
