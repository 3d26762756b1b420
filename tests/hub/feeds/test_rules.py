"""Pure rules of feeds: cursors (encrypted, bound to their agency, version 1 still read),
the positions agencies are shown, keyed page validators."""

import base64
from itertools import pairwise

import pytest

from hub.feeds.errors import CursorError, PositionError
from hub.feeds.rules import Cursors, Positions, etag_key, page_etag
from hub.feeds.schemas import FeedFilters
from tests.hub.feeds.builders import v1_cursor

MASTER = b"m" * 32


def test_cursors_round_trip_and_hide_their_position() -> None:
    cursors = Cursors(MASTER)
    early, late = (cursors.encode(seq, agency="police-north") for seq in (7, 123_456_789_012))
    assert cursors.decode(early, agency="police-north") == 7
    assert cursors.decode(late, agency="police-north") == 123_456_789_012
    assert len(early) == len(late)  # the length says nothing of the position either
    raw = base64.urlsafe_b64decode(late + "=" * (-len(late) % 4))
    assert b"123456789012" not in raw
    assert (123_456_789_012).to_bytes(8, "big") not in raw
    assert cursors.encode(7, agency="police-north") == early  # deterministic


def test_cursors_of_another_agency_altered_or_malformed_are_refused() -> None:
    cursors = Cursors(MASTER)
    cursor = cursors.encode(42, agency="police-north")
    flipped = cursor[:5] + ("B" if cursor[5] == "A" else "A") + cursor[6:]
    for agency, bad in (
        ("city-analytics", cursor),
        ("police-north", flipped),
        ("police-north", "garbage"),
        ("police-north", "!!"),
        ("police-north", Cursors(b"k" * 32).encode(42, agency="police-north")),
    ):
        with pytest.raises(CursorError):
            cursors.decode(bad, agency=agency)


def test_version_one_cursors_are_still_read_and_checked() -> None:
    cursors = Cursors(MASTER)
    assert cursors.decode(v1_cursor(MASTER, 99, agency="police-north"), agency="police-north") == 99
    with pytest.raises(CursorError, match="not valid"):
        cursors.decode(v1_cursor(MASTER, 99, agency="police-north"), agency="city-analytics")


def test_each_agency_is_shown_its_own_unordered_pseudonyms() -> None:
    positions = Positions(MASTER)
    seqs = list(range(1, 2_001))
    north = positions.shown(seqs, agency="police-north")
    city = positions.shown(seqs, agency="city-analytics")
    assert len(set(north)) == len(seqs)
    assert all(10**15 <= n < 2 * 10**15 for n in north)
    assert positions.stated(north, agency="police-north") == seqs
    assert positions.stated(city, agency="city-analytics") == seqs
    assert not set(north) & set(city)
    # Consecutive positions are shown in no order and at no telling distance.
    rising = sum(b > a for a, b in pairwise(north))
    assert 800 < rising < 1_200
    assert min(abs(b - a) for a, b in pairwise(north)) > 1_000


def test_numbers_never_shown_are_refused() -> None:
    positions = Positions(MASTER)
    for bad in (-5, 2 * 10**15, 2 * 10**15 + 1):
        with pytest.raises(PositionError, match="lies in"):
            positions.stated([bad], agency="police-north")


def test_numbers_from_an_earlier_numbering_are_refused_not_taken_for_others() -> None:
    # Hub-wide positions (before ADR 0042) and the first pseudonyms (1..10^15) are what an
    # agency may still hold: read as today's numbers they would name other events.
    positions = Positions(MASTER)
    for old in (0, 1, 42, 10**15 - 1):
        with pytest.raises(PositionError, match="earlier numbering"):
            positions.stated([old], agency="police-north")
    assert positions.stated([10**15], agency="police-north")[0] >= 0


def test_page_validators_are_keyed() -> None:
    def etag(master: bytes) -> str:
        return page_etag(
            key=etag_key(master), agency_state=b"[]", after=0, limit=100,
            filters=FeedFilters(), seqs=[1, 2], revision="r1",
        )  # fmt: skip

    one = etag(MASTER)
    assert one == etag(MASTER)
    assert one != etag(b"k" * 32)
