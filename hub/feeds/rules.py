"""Pure rules of feeds: opaque signed cursors, ETags, filter and subscription matching, the
recipient."""

import base64
import hashlib
import hmac
import struct
from collections.abc import Sequence
from datetime import datetime

import msgspec

from hub.delivery.schemas import Subscription
from hub.feeds.errors import CursorError
from hub.feeds.schemas import FeedFilters
from hub.identity.schemas import Subject
from hub.policy.schemas import Recipient

CURSOR_VERSION = 1
_MAC_BYTES = 16


def cursor_key(master: bytes) -> bytes:
    """The cursor-signing key, derived from the hub's release master key."""
    return hmac.new(master, b"hub.feeds.cursor.v1", hashlib.sha256).digest()


def encode_cursor(seq: int, *, agency: str, key: bytes) -> str:
    """An opaque cursor for "after position `seq`", valid only for `agency`."""
    body = msgspec.json.encode([CURSOR_VERSION, seq])
    mac = hmac.new(key, agency.encode() + b"\x00" + body, hashlib.sha256).digest()[:_MAC_BYTES]
    return f"{_b64(body)}.{_b64(mac)}"


def decode_cursor(cursor: str, *, agency: str, key: bytes) -> int:
    """The position a cursor stands for; `CursorError` if it was altered, forged, or issued
    to another agency (a cursor is not a way to probe another agency's feed)."""
    body_text, _, mac_text = cursor.partition(".")
    try:
        body, mac = _unb64(body_text), _unb64(mac_text)
    except ValueError:
        raise CursorError("cursor is malformed") from None
    expected = hmac.new(key, agency.encode() + b"\x00" + body, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected[:_MAC_BYTES]):
        raise CursorError("cursor is not valid for this agency")
    try:
        version, seq = msgspec.json.decode(body, type=tuple[int, int])
    except msgspec.DecodeError:
        raise CursorError("cursor is malformed") from None
    if version != CURSOR_VERSION or seq < 0:
        raise CursorError("cursor is from another version of the hub")
    return seq


def page_etag(
    *,
    agency_state: bytes,
    after: int,
    limit: int,
    filters: FeedFilters,
    seqs: Sequence[int],
    revision: str | None,
) -> str:
    """A weak validator for a page: the same positions under the same policy revision and
    agency registry state give the same released content (decision ids aside)."""
    digest = hashlib.sha256()
    for part in (agency_state, msgspec.json.encode([after, limit, filters, list(seqs), revision])):
        digest.update(len(part).to_bytes(4, "big") + part)
    return f'W/"{digest.hexdigest()[:32]}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison against an If-None-Match header (`*` matches anything)."""
    if not if_none_match:
        return False
    wanted = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in wanted or etag.removeprefix("W/") in wanted


def matches(
    filters: FeedFilters, *, camera_id: str, classes: Sequence[str], captured_at: datetime
) -> bool:
    """Whether an event passes a reader's filters (the live feed filters in Python)."""
    if filters.cameras and camera_id not in filters.cameras:
        return False
    if filters.classes and not set(filters.classes) & set(classes):
        return False
    if filters.since is not None and captured_at < filters.since:
        return False
    return filters.until is None or captured_at < filters.until


def subscribed(
    subscription: Subscription,
    *,
    camera_id: str,
    classes: Sequence[str],
    max_confidence: float,
) -> bool:
    """Whether an agency's subscription wants an event: the test offers make in SQL
    (hub/feeds/repository.py, `_INSERT_OFFERS`), so the live feed offers what pages do."""
    if subscription.classes and not set(subscription.classes) & set(classes):
        return False
    if subscription.cameras and camera_id not in subscription.cameras:
        return False
    # The column is `real`: compare at its precision, as PostgreSQL does (`$7::real`).
    return max_confidence >= _as_real(subscription.min_confidence)


def _as_real(value: float) -> float:
    """A float rounded to single precision (PostgreSQL's `real`)."""
    return float(struct.unpack("f", struct.pack("f", value))[0])


def recipient_for(
    subject: Subject, *, agency: str, jurisdictions: Sequence[str], clearance: int
) -> Recipient:
    """The release recipient for a subject acting for a registered agency: the narrower of
    what the registry grants the agency and what the subject's credential carries."""
    granted = list(jurisdictions)
    if subject.jurisdictions:
        granted = [j for j in granted if j in subject.jurisdictions]
    return Recipient(
        id=agency,
        kind="agency",
        jurisdictions=granted,
        clearance=min(clearance, subject.clearance),
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not text or len(text) > 512:
        raise ValueError("bad length")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None
