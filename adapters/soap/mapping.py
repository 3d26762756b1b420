"""From a `Message` to an operation's request, and from the answer to a receipt reference.

The mapping rule: each child element of the operation's request is filled by name from, in
order of precedence, the delivery fields (`deliveryId`, `decisionId`, `attempt`, `test`,
`agency`), derived fields (`classes`: the distinct detection labels, `detectionCount`,
`record`: the whole released record as JSON text) and the released record's own top-level
scalar fields (`camera_id` fills `cameraId`, `event_id`, `node_id` and `captured_at` fill
`eventId`, `nodeId` and `capturedAt`, as redacted). Names match ignoring case and
underscores. An element with no source is left out, so a required one fails as a request
that does not match the WSDL (permanent), never as a guess.
"""

from typing import Any

import msgspec
from zeep.helpers import serialize_object

Scalar = str | int | float | bool

# Answer fields that carry the agency's own id for the message, by normalised name.
_REFERENCE_NAMES = ("receiptid", "reference", "referenceid", "messageid", "id")


class RequestShapeError(Exception):
    """The operation's request is not a sequence of named elements this adapter can fill."""


def normalise(name: str) -> str:
    """The matching key of a field or element name: `camera_id`, `cameraId` -> `cameraid`."""
    return name.replace("_", "").replace("-", "").lower()


def request_elements(operation: Any) -> list[str]:
    """Names of the child elements of the operation's request (document or rpc style)."""
    body = getattr(operation.input, "body", None)
    elements = getattr(getattr(body, "type", None), "elements", None)
    if elements is None:
        raise RequestShapeError("the operation's request has no element sequence")
    return [name for name, _ in elements]


def request_values(names: list[str], sources: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments for the call: each element name with its value, when there is one."""
    found = {name: sources.get(normalise(name)) for name in names}
    return {name: value for name, value in found.items() if value is not None}


def message_sources(
    *,
    delivery: dict[str, Any],
    record: dict[str, Any],
) -> dict[str, Any]:
    """Every value a request element may take, by normalised name (delivery fields win)."""
    sources: dict[str, Any] = {
        normalise(key): value for key, value in record.items() if isinstance(value, Scalar)
    }
    detections = record.get("detections")
    if isinstance(detections, list):
        labels = {d.get("label") for d in detections if isinstance(d, dict)}
        sources["classes"] = sorted(label for label in labels if isinstance(label, str))
        sources["detectioncount"] = len(detections)
    sources["record"] = msgspec.json.encode(record).decode()
    sources.update({normalise(key): value for key, value in delivery.items()})
    return sources


def receipt_reference(answer: Any) -> str | None:
    """The agency's id for the message from the operation's answer, when it gives one."""
    value = serialize_object(answer, dict)  # type: ignore[no-untyped-call]  # zeep is untyped
    if value is None:
        return None
    if isinstance(value, Scalar):
        return str(value)[:200]
    if isinstance(value, dict):
        by_name = {normalise(str(key)): item for key, item in value.items()}
        for name in _REFERENCE_NAMES:
            if isinstance(by_name.get(name), Scalar):
                return str(by_name[name])[:200]
    return None
