"""Pure rules of the audit chain."""

from datetime import UTC, datetime
from typing import Any

import msgspec

from hub.audit.rules import GENESIS, check_link, entry_body, entry_hash
from hub.audit.schemas import StoredEntry

AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
FIELDS: dict[str, Any] = {
    "at": AT,
    "actor": "a",
    "action": "x",
    "target": "t",
    "detail": {"n": 1},
    "decision_id": None,
    "trace_id": None,
}


def stored(seq: int, prev: bytes, **changes: Any) -> StoredEntry:
    digest = entry_hash(prev_hash=prev, seq=seq, body=entry_body(**FIELDS))
    entry = StoredEntry(seq=seq, prev_hash=prev, hash=digest, **FIELDS)
    return msgspec.structs.replace(entry, **changes)


def test_hash_depends_on_every_field_the_seq_and_the_previous_hash() -> None:
    base = stored(1, GENESIS).hash
    assert stored(1, b"\x01" * 32).hash != base
    assert entry_hash(prev_hash=GENESIS, seq=2, body=entry_body(**FIELDS)) != base
    changes = {
        "actor": "b",
        "action": "y",
        "target": "u",
        "detail": {"n": 2},
        "decision_id": "d",
        "trace_id": "t",
        "at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    for field, value in changes.items():
        body = entry_body(**{**FIELDS, field: value})
        assert entry_hash(prev_hash=GENESIS, seq=1, body=body) != base, field


def test_body_ignores_key_order_of_detail() -> None:
    one = entry_body(**{**FIELDS, "detail": {"a": 1, "b": 2}})
    two = entry_body(**{**FIELDS, "detail": {"b": 2, "a": 1}})
    assert one == two


def test_check_link_names_edit_gap_and_wrong_pointer() -> None:
    first = stored(1, GENESIS)
    assert check_link(first, expected_seq=1, prev_hash=GENESIS) is None
    edited = msgspec.structs.replace(first, actor="mallory")
    assert "altered" in (check_link(edited, expected_seq=1, prev_hash=GENESIS) or "")
    third = stored(3, first.hash)
    assert "entry 2 is missing" in (check_link(third, expected_seq=2, prev_hash=first.hash) or "")
    wrong = stored(2, b"\x02" * 32)
    assert "does not point" in (check_link(wrong, expected_seq=2, prev_hash=first.hash) or "")
