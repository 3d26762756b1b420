"""The request envelope of one operation, prepared once and filled per delivery.

zeep re-derives everything per call: it builds a typed value of the whole request (checking
every argument), an `ElementMaker` envelope, the HTTP headers and its plugin chain. For a
document/literal operation only the request's child elements change between deliveries, so
the first call's envelope (made by zeep itself) becomes a template: each delivery copies it
and renders its values into the request element with zeep's own element serialisers, which
still check each value against its schema type and refuse a missing required element. Other
operation styles (rpc, wrapped bodies, SOAP headers as parts) keep zeep's full path.
"""

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lxml import etree
from zeep.exceptions import TransportError

from adapters.soap.mapping import request_elements


@dataclass(frozen=True, slots=True)
class PreparedOperation:
    """A template envelope whose request element is emptied, and that element's children."""

    operation: Any  # zeep's binding operation
    template: etree._Element
    http_headers: dict[str, str]
    path: tuple[int, ...]  # child indexes from the envelope to the request element
    elements: tuple[tuple[str, Any], ...]  # (name, zeep element) in schema order

    def fill(self, values: Mapping[str, Any]) -> tuple[etree._Element, dict[str, str]]:
        """A fresh envelope carrying `values` (by element name) and its HTTP headers."""
        envelope = copy.deepcopy(self.template)
        request = envelope
        for index in self.path:
            request = request[index]
        render_path = [etree.QName(request).localname]
        for name, element in self.elements:
            value = values.get(name)
            if value is None and element.is_optional:
                continue  # left out, as zeep leaves out an optional element with no value
            element.render(request, value, [*render_path, name])
        return envelope, dict(self.http_headers)


def prepare(
    proxy: Any, binding: Any, name: str, values: Mapping[str, Any]
) -> PreparedOperation | None:
    """The operation's template, built by zeep (through `proxy`'s client and options) from one
    real call's `values`; None when the operation is not a plain document/literal request."""
    operation = binding.get(name)
    message = operation.input
    body = getattr(message, "body", None)
    if body is None or getattr(message, "_is_body_wrapped", True) or message.header.type.elements:
        return None
    request_elements(operation)  # RequestShapeError when the request is no element sequence
    client, options = proxy._client, proxy._binding_options
    envelope, http_headers = binding._create(name, (), dict(values), client, options)
    body_node = envelope.find(f"{{{etree.QName(envelope).namespace}}}Body")
    if body_node is None or len(body_node) != 1:
        return None
    request = body_node[0]
    for child in list(request):
        request.remove(child)
    return PreparedOperation(
        operation=operation,
        template=envelope,
        http_headers=dict(http_headers),
        path=(list(envelope).index(body_node), 0),
        elements=tuple(body.type.elements),
    )


def read_reply(binding: Any, operation: Any, status: int, root: etree._Element | None) -> Any:
    """zeep's `process_reply` from an answer already parsed as untrusted: a fault raises
    zeep's `Fault`, an answer is deserialised by the operation's output type. zeep would parse
    it again; what it would add is not used here (multipart answers never pass
    `parse_untrusted`, the hub configures no WS-Security and its plugin reads no answers)."""
    if root is None:
        if status in (201, 202):
            return None
        raise TransportError(  # type: ignore[no-untyped-call]  # zeep is untyped
            f"agency answered HTTP {status} without content", status_code=status
        )
    fault = root.find("soap-env:Body/soap-env:Fault", namespaces=binding.nsmap)
    if status != 200 or fault is not None:
        return binding.process_error(root, operation)
    return operation.process_reply(root)
