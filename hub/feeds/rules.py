"""Pure rules of feeds: opaque encrypted cursors, the positions an agency is shown, ETags,
filter and subscription matching, the recipient."""

import base64
import hashlib
import hmac
import struct
from collections.abc import Sequence
from datetime import datetime

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from hub.delivery.schemas import Subscription
from hub.feeds.errors import CursorError, PositionError
from hub.feeds.schemas import FeedFilters
from hub.identity.schemas import Subject
from hub.kit.fpe import FF1
from hub.policy.schemas import Recipient

# Version 2 (ADR 0042): the body is encrypted, not only signed, so the cursor no longer shows
# the hub-wide position it stands for. Version 1 cursors (a readable body and a MAC) are still
# accepted, so agencies that stored one resume where they were.
CURSOR_VERSION = 2
_CURSOR_V1 = 1
_MAC_BYTES = 16
_CURSOR_BODY = struct.Struct(">BQ")  # fixed width: the length says nothing of the position
# Shown positions are FF1 over 15 decimal digits, moved up by 10^15: every one lies in
# [10^15, 2 x 10^15), exact as a JSON number in every client (2^53), and far beyond any feed's
# length. Below that range lie the numbers agencies were shown before: hub-wide positions
# until ADR 0042, and its first pseudonyms (1..10^15). An agency that acknowledges one it still
# holds is told so, instead of having some other event's receipt recorded.
POSITION_DIGITS = 15
_NOT_SHOWN = 10**POSITION_DIGITS
FIRST_SHOWN = _NOT_SHOWN
LAST_SHOWN = 2 * _NOT_SHOWN - 1


class Cursors:
    """Opaque cursors for "after position `seq`", each valid only for the agency it was
    issued to: encrypted and authenticated with AES-SIV, deterministic (the same position
    gives the same cursor), bound to the agency as associated data."""

    def __init__(self, master: bytes) -> None:
        self._siv = AESSIV(hmac.new(master, b"hub.feeds.cursor.v2", hashlib.sha512).digest())
        self._v1_key = hmac.new(master, b"hub.feeds.cursor.v1", hashlib.sha256).digest()

    def encode(self, seq: int, *, agency: str) -> str:
        """The cursor after position `seq`, for `agency`."""
        sealed = self._siv.encrypt(_CURSOR_BODY.pack(CURSOR_VERSION, seq), _bound(agency))
        return _b64(sealed)

    @staticmethod
    def version_of(cursor: str) -> int:
        """The version a cursor claims by its shape (version 1 has a readable body and a
        MAC, joined by a dot; version 2 is one piece of ciphertext)."""
        return _CURSOR_V1 if "." in cursor else CURSOR_VERSION

    def decode(self, cursor: str, *, agency: str) -> int:
        """The position a cursor stands for; `CursorError` if it was altered, forged, or
        issued to another agency (a cursor is not a way to probe another agency's feed)."""
        if self.version_of(cursor) == _CURSOR_V1:
            return _decode_v1(cursor, agency=agency, key=self._v1_key)
        try:
            body = self._siv.decrypt(_unb64(cursor), _bound(agency))
        except ValueError:
            raise CursorError("cursor is malformed") from None
        except InvalidTag:
            raise CursorError("cursor is not valid for this agency") from None
        if len(body) != _CURSOR_BODY.size:
            raise CursorError("cursor is malformed")
        version, seq = _CURSOR_BODY.unpack(body)
        if version != CURSOR_VERSION:
            raise CursorError("cursor is from another version of the hub")
        return int(seq)


class Positions:
    """The feed positions an agency is shown: each agency's own pseudonym of the hub-wide
    position (FF1 under the agency's name as tweak), in [10^15, 2 x 10^15). Stable and unique
    per agency but in no order, so the numbers an agency holds do not tell how many events lie
    between them (ADR 0042); page order is feed order."""

    def __init__(self, master: bytes) -> None:
        key = hmac.new(master, b"hub.feeds.position.v1", hashlib.sha256).digest()
        self._ff1 = FF1(key, radix=10, digits=POSITION_DIGITS)

    def shown(self, seqs: Sequence[int], *, agency: str) -> list[int]:
        """What `agency` is shown for these hub-wide positions (`PositionError` past 10^15,
        which no feed reaches)."""
        try:  # FF1 checks the domain itself: no second pass over a page's positions here
            pseudonyms = self._ff1.encrypt(seqs, tweak=agency.encode())
        except ValueError:
            raise PositionError(f"a hub-wide feed position lies in [0, {_NOT_SHOWN})") from None
        return [FIRST_SHOWN + p for p in pseudonyms]

    def stated(self, shown: Sequence[int], *, agency: str) -> list[int]:
        """The hub-wide positions behind numbers `agency` states (from what it was shown);
        `PositionError` for a number no position is ever shown as."""
        if any(0 <= n < FIRST_SHOWN for n in shown):
            raise PositionError(
                "a number below 10^15 is from an earlier numbering of feed positions (hub-wide "
                "until ADR 0042); acknowledge the seq values your items carry now"
            )
        if any(not FIRST_SHOWN <= n <= LAST_SHOWN for n in shown):
            raise PositionError(f"a feed position lies in [{FIRST_SHOWN}, {LAST_SHOWN}]")
        return self._ff1.decrypt([n - FIRST_SHOWN for n in shown], tweak=agency.encode())


def _bound(agency: str) -> list[bytes]:
    return [b"hub.feeds.cursor", agency.encode()]


def _decode_v1(cursor: str, *, agency: str, key: bytes) -> int:
    """A version 1 cursor: a JSON body and a truncated HMAC over agency and body."""
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
    if version != _CURSOR_V1 or seq < 0:
        raise CursorError("cursor is from another version of the hub")
    return seq


def etag_key(master: bytes) -> bytes:
    """The key page validators are made with (derived from the hub's release master key)."""
    return hmac.new(master, b"hub.feeds.etag.v1", hashlib.sha256).digest()


def page_etag(
    *,
    key: bytes,
    agency_state: bytes,
    after: int,
    limit: int,
    filters: FeedFilters,
    seqs: Sequence[int],
    revision: str | None,
) -> str:
    """A weak validator for a page: the same positions under the same policy revision and
    agency registry state give the same released content (decision ids aside). Keyed, so it
    cannot be matched against guessed hub-wide positions (ADR 0042)."""
    digest = hmac.new(key, digestmod=hashlib.sha256)
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
