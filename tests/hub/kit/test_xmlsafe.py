"""Untrusted XML is bounded in elements, attributes and depth before anything costly reads it."""

import time

import pytest

from hub.kit.xmlsafe import UnsafeXMLError, XmlShape, check_shape, parse_untrusted


def _parse(text: str) -> object:
    return parse_untrusted(text.encode())


def test_a_small_document_passes() -> None:
    check_shape(parse_untrusted(b'<a x="1"><b/><c y="2"/></a>'), XmlShape())


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("<a " + " ".join(f'a{i}="x"' for i in range(17)) + "/>", "attributes on one element"),
        ("<a>" + "".join(f'<b x="{i}" y="1"/>' for i in range(101)) + "</a>", "attributes"),
        ("<a>" + "<b/>" * 2_000 + "</a>", "elements"),
        ("<a>" * 17 + "</a>" * 17, "deeper"),
    ],
)
def test_documents_past_a_bound_are_refused(document: str, message: str) -> None:
    with pytest.raises(UnsafeXMLError, match=message):
        check_shape(parse_untrusted(document.encode()), XmlShape())


def test_the_check_is_fast_on_a_maximal_body() -> None:
    body = ("<a>" + "<b/>" * 5_000 + "</a>").encode()  # about 20 KB
    started = time.perf_counter()
    with pytest.raises(UnsafeXMLError):
        check_shape(parse_untrusted(body), XmlShape())
    assert time.perf_counter() - started < 0.05
