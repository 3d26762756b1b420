"""Parsing XML that came from outside: entities, DTDs and network access off, size bounded.

Every XML document the hub reads (SOAP requests, agency answers, demo receivers) goes through
`parse_untrusted`, so billion-laughs bombs and external entities are refused, not expanded.
`check_shape` bounds element and attribute counts and depth before anything costlier (schema
validation) looks at a tree: a 50 KB body of thousands of attributes kept xmlschema busy for
minutes.
"""

from dataclasses import dataclass

from lxml import etree

# Deeper or bigger than any legitimate message of ours; lxml's own hard limits stay on too.
MAX_XML_BYTES = 1 << 20


class UnsafeXMLError(ValueError):
    """The document is not well-formed, too big, or declares a DTD or entities."""


@dataclass(frozen=True, slots=True)
class XmlShape:
    """The most elements, attributes (per element and in all) and nesting a document may have."""

    max_elements: int = 2_000
    max_attributes: int = 200
    max_attributes_per_element: int = 16
    max_depth: int = 16


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


def check_shape(root: etree._Element, shape: XmlShape) -> None:
    """Raise `UnsafeXMLError` when the tree under `root` is bigger or deeper than `shape`."""
    attributes = 0
    for elements, node in enumerate(root.iter(), start=1):
        count = len(node.attrib)
        attributes += count
        if count > shape.max_attributes_per_element:
            raise UnsafeXMLError(
                f"more than {shape.max_attributes_per_element} attributes on one element"
            )
        if elements > shape.max_elements:
            raise UnsafeXMLError(f"more than {shape.max_elements} elements")
        if attributes > shape.max_attributes:
            raise UnsafeXMLError(f"more than {shape.max_attributes} attributes")
    if _depth(root) > shape.max_depth:
        raise UnsafeXMLError(f"nested deeper than {shape.max_depth} elements")


def _depth(root: etree._Element) -> int:
    """Nesting depth of the tree (1 for a lone root), without recursion."""
    deepest, level = 0, [(root, 1)]
    while level:
        node, depth = level.pop()
        deepest = max(deepest, depth)
        level.extend((child, depth + 1) for child in node)
    return deepest
