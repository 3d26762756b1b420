"""OASIS CAP 1.2 alerts built from released detection records, checked against our XSD, and
read back by receivers.

Only what the redacted record holds goes in (its event id, node and times as released), plus
the delivery's own ids (delivery and decision). A field release policy removed is absent.
"""

import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import msgspec
from lxml import etree

from adapters.base import Message

CAP_NS: Final = "urn:oasis:names:tc:emergency:cap:1.2"
SCHEMA_FILE: Final = Path(__file__).with_name("cap-1.2.xsd")
# valueName of the parameter carrying the whole redacted record as JSON.
RECORD_PARAMETER: Final = "record"
# alert/code: tells a receiver which profile of CAP this is and how to read the parameters.
PROFILE_CODE: Final = "hub.detection.v1"
# Classes that mean a possible threat to life; everything else is a routine sighting.
THREAT_CLASSES: Final = frozenset({"weapon", "gun", "firearm", "knife", "fire", "smoke"})
HEADLINE_CHARS: Final = 160  # CAP asks headlines to stay short enough for text messages

# Characters XML 1.0 cannot carry at all; replaced rather than failing the delivery.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class CapSchemaError(ValueError):
    """The document does not satisfy the CAP 1.2 schema; the message says where."""


class AlertContent(msgspec.Struct, frozen=True, kw_only=True):
    """What a receiver reads out of a (verified) alert."""

    identifier: str
    sender: str
    status: str
    parameters: dict[str, str]
    record: dict[str, Any] | None  # the JSON record parameter, when present and an object


def load_schema() -> etree.XMLSchema:
    """The CAP 1.2 schema compiled by libxml2, once per process: validating one alert then
    costs tens of microseconds (xmlschema took about 2 ms)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(SCHEMA_FILE), parser))


def validate_alert(schema: etree.XMLSchema, root: etree._Element) -> None:
    """Raise `CapSchemaError` with the first violation when `root` is not a valid alert."""
    # libxml2 never follows an xsi:schemaLocation in the document: the schema is ours alone.
    if schema.validate(root):
        return
    error = schema.error_log[0]
    raise CapSchemaError(f"not a valid CAP 1.2 alert at line {error.line}: {error.message}")


def format_cap_time(moment: datetime) -> str:
    """CAP's dateTime: whole seconds and an explicit offset ("+00:00", never "Z")."""
    if moment.tzinfo is None:
        raise ValueError("CAP times need an offset; got a naive datetime")
    return moment.replace(microsecond=0).isoformat()


def build_alert(message: Message, *, sender: str, sent: datetime) -> etree._Element:
    """One CAP alert for one delivery; the identifier is the delivery id, so a re-send of the
    same delivery carries the same identifier and the agency can drop the repeat."""
    alert = etree.Element(_tag("alert"), nsmap={None: CAP_NS})
    _add(alert, "identifier", str(message.delivery_id))
    _add(alert, "sender", sender)
    _add(alert, "sent", format_cap_time(sent))
    _add(alert, "status", "Test" if message.test else "Actual")
    _add(alert, "msgType", "Alert")
    _add(alert, "scope", "Restricted")
    _add(
        alert,
        "restriction",
        f"For {message.agency} only, as released by policy decision {message.decision_id}",
    )
    _add(alert, "code", PROFILE_CODE)
    if message.test:
        _add(alert, "note", "Connectivity test sent by the hub operator; no real event.")
    alert.append(_info(message))
    return alert


def _info(message: Message) -> etree._Element:
    record = message.record
    labels = _labels(record)
    threat = not THREAT_CLASSES.isdisjoint(labels)
    event = f"Camera detection: {', '.join(labels)}" if labels else "Camera detection"
    camera = _text_of(record.get("camera_id"))
    info = etree.Element(_tag("info"))
    _add(info, "category", "Security")
    _add(info, "event", event)
    _add(info, "urgency", "Immediate" if threat else "Unknown")
    _add(info, "severity", "Severe" if threat else "Minor")
    _add(info, "certainty", _certainty(record))
    _add(info, "senderName", "Integration hub")
    headline = f"{event} on camera {camera}" if camera else event
    _add(info, "headline", headline[:HEADLINE_CHARS])
    for name, value in _parameters(message):
        parameter = etree.SubElement(info, _tag("parameter"))
        _add(parameter, "valueName", name)
        _add(parameter, "value", value)
    info.append(_area(record))
    return info


def _detections(record: dict[str, Any]) -> list[dict[str, Any]]:
    found = record.get("detections")
    return [d for d in found if isinstance(d, dict)] if isinstance(found, list) else []


def _labels(record: dict[str, Any]) -> list[str]:
    return sorted({d["label"] for d in _detections(record) if isinstance(d.get("label"), str)})


def _certainty(record: dict[str, Any]) -> str:
    # The detector's best confidence stands in for CAP's likelihood scale.
    scores = [d.get("confidence") for d in _detections(record)]
    numbers = [float(s) for s in scores if isinstance(s, int | float) and not isinstance(s, bool)]
    if not numbers:
        return "Unknown"
    best = max(numbers)
    if best >= 0.9:
        return "Observed"
    if best >= 0.6:
        return "Likely"
    return "Possible" if best >= 0.3 else "Unlikely"


def _parameters(message: Message) -> list[tuple[str, str]]:
    record = message.record
    pairs: list[tuple[str, Any]] = [
        ("camera_id", record.get("camera_id")),
        ("node_id", record.get("node_id")),
        ("event_id", record.get("event_id")),
        ("decision_id", message.decision_id),
        ("captured_at", record.get("captured_at")),
        ("model_name", record.get("model_name")),
        ("model_version", record.get("model_version")),
    ]
    for index, detection in enumerate(_detections(record)):
        prefix = f"detection.{index}"
        pairs += [(f"{prefix}.{k}", detection.get(k)) for k in ("label", "confidence", "track_id")]
        attributes = detection.get("attributes")
        if isinstance(attributes, dict):
            pairs += [(f"{prefix}.attributes.{k}", v) for k, v in sorted(attributes.items())]
    pairs.append((RECORD_PARAMETER, msgspec.json.encode(record, order="sorted").decode()))
    return [(name, text) for name, value in pairs if (text := _text_of(value)) is not None]


def _area(record: dict[str, Any]) -> etree._Element:
    camera = _text_of(record.get("camera_id"))
    jurisdiction = _text_of(record.get("jurisdiction"))
    parts = [
        f"jurisdiction {jurisdiction}" if jurisdiction else "",
        f"camera {camera}" if camera else "",
    ]
    area = etree.Element(_tag("area"))
    _add(area, "areaDesc", ", ".join(p for p in parts if p) or "location withheld")
    for name, value in (("jurisdiction", jurisdiction), ("camera_id", camera)):
        if value:
            geocode = etree.SubElement(area, _tag("geocode"))
            _add(geocode, "valueName", name)
            _add(geocode, "value", value)
    return area


def _text_of(value: Any) -> str | None:
    """Parameter text for a record value; None (left out) for absent or withheld values."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return None
    text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
    return _NOT_XML.sub("\ufffd", text)


def _tag(name: str) -> str:
    return f"{{{CAP_NS}}}{name}"


def _add(parent: etree._Element, name: str, text: str) -> None:
    etree.SubElement(parent, _tag(name)).text = text


def read_alert(root: etree._Element) -> AlertContent:
    """The identifier, status and parameters of a schema-valid alert (first info block)."""
    parameters: dict[str, str] = {}
    info = root.find(_tag("info"))
    if info is not None:
        for parameter in info.iterfind(_tag("parameter")):
            parameters[parameter.findtext(_tag("valueName"), "")] = parameter.findtext(
                _tag("value"), ""
            )
    return AlertContent(
        identifier=root.findtext(_tag("identifier"), ""),
        sender=root.findtext(_tag("sender"), ""),
        status=root.findtext(_tag("status"), ""),
        parameters=parameters,
        record=_record_of(parameters.get(RECORD_PARAMETER)),
    )


def _record_of(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        record = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return None
    return record if isinstance(record, dict) else None


def utc_now() -> datetime:
    """The current time in UTC (the `sent` of a new alert)."""
    return datetime.now(UTC)
