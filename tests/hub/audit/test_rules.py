"""Pure rules of the audit log: leaves, stored-hash keys, checkpoints, prune points."""

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.audit import merkle
from hub.audit.rules import (
    checkpoint_due,
    checkpoint_note,
    entry_body,
    entry_leaf,
    keys_for,
    perfect_from,
    perfect_keys,
    pieces,
    prune_point,
    stored_leaf,
)
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


def stored(seq: int, **changes: Any) -> StoredEntry:
    return StoredEntry(seq=seq, leaf_index=None, leaf_hash=None, **{**FIELDS, **changes})


def test_a_leaf_is_the_rfc_leaf_of_seq_and_canonical_body() -> None:
    body = (
        b'{"action":"x","actor":"a","at":"2026-11-22T12:00:00.000000+00:00",'
        b'"decision_id":null,"detail":{"n":1},"target":"t","trace_id":null}'
    )
    assert entry_body(**FIELDS) == body
    expected = hashlib.sha256(b"\x00" + (7).to_bytes(8, "big") + body).digest()
    assert entry_leaf(stored(7)) == expected


def test_the_leaf_depends_on_every_field_and_the_seq() -> None:
    base = entry_leaf(stored(1))
    assert entry_leaf(stored(2)) != base
    changes = {
        "actor": "b",
        "action": "y",
        "target": "u",
        "detail": {"n": 2},
        "decision_id": "d",
        "trace_id": "t",
        "at": AT + timedelta(microseconds=1),
    }
    for field, value in changes.items():
        assert entry_leaf(stored(1, **{field: value})) != base, field


def test_body_ignores_key_order_of_detail() -> None:
    one = entry_body(**{**FIELDS, "detail": {"a": 1, "b": 2}})
    two = entry_body(**{**FIELDS, "detail": {"b": 2, "a": 1}})
    assert one == two


def test_perfect_subtrees_fold_at_most_128_stored_hashes() -> None:
    assert perfect_keys(0, 0) == [(0, 0)]
    assert perfect_keys(4, 2) == [(0, 4), (0, 5), (0, 6), (0, 7)]
    assert perfect_keys(512, 8) == [(8, 2)]
    assert perfect_keys(512, 9) == [(8, 2), (8, 3)]
    assert len(perfect_keys(0, 15)) == 128
    assert perfect_keys(1 << 16, 16) == [(16, 1)]
    assert pieces(0, 5) == [(0, 2), (4, 0)]
    assert pieces(256, 300) == [(256, 5), (288, 3), (296, 2)]


def test_range_hashes_from_stored_tiles_equal_the_recursive_root() -> None:
    leaves = [merkle.leaf_hash(str(i).encode()) for i in range(700)]
    stored: dict[tuple[int, int], bytes] = {(0, i): h for i, h in enumerate(leaves)}
    edge = merkle.CompactRange()
    for value in leaves:
        edge.append(value, lambda h, i, v: stored.__setitem__((h, i), v) if h == 8 else None)
    ranges = merkle.inclusion_ranges(650, 700)
    needed = keys_for(ranges)
    assert (8, 0) in needed  # the first 256 leaves come as one stored node
    assert (0, 0) not in needed
    only = {k: stored[k] for k in needed}
    path = [merkle.range_hash(lo, hi, perfect_from(only)) for lo, hi in ranges]
    root = merkle.root_of(leaves)
    assert merkle.verify_inclusion(leaves[650], index=650, size=700, path=path, root=root)


def test_checkpoint_note_and_schedule() -> None:
    note = checkpoint_note(size=3, root=b"\x01" * 32, signed_at=AT)
    assert note == f"hub audit log v1\n3\n{'01' * 32}\n2026-11-22T12:00:00.000000+00:00\n"
    assert checkpoint_due(None, now=AT, every_seconds=60)
    assert not checkpoint_due(AT, now=AT + timedelta(seconds=59), every_seconds=60)
    assert checkpoint_due(AT, now=AT + timedelta(seconds=60), every_seconds=60)


def test_prune_point_stays_within_the_checkpoint_and_on_a_tile() -> None:
    assert prune_point(checkpoint_size=1000, first_young=None, sealed=1200) == 768
    assert prune_point(checkpoint_size=1000, first_young=300, sealed=1200) == 256
    assert prune_point(checkpoint_size=200, first_young=None, sealed=1200) == 0
    assert prune_point(checkpoint_size=0, first_young=None, sealed=1200) == 0


def test_prune_point_keeps_the_tile_a_lagging_witness_holds_a_size_in() -> None:
    def point(first_young: int | None, holds: int) -> int:
        return prune_point(
            checkpoint_size=1000, first_young=first_young, sealed=1200, witness_holds=holds
        )

    assert point(None, 300) == 256
    assert point(None, 512) == 512
    assert point(None, 0) == 0
    assert point(300, 900) == 256  # a witness ahead of the other limits changes nothing


def test_a_leaf_from_stored_columns_is_the_entry_leaf() -> None:
    """Verification reads the detail as PostgreSQL writes jsonb (its own key order and
    spacing, escapes) and the time preformatted; the leaf must not change."""
    detail = {"z": [1, 2], "a": {"y": None, "b": 1.5}, "é": "ü\n"}
    entry = stored(9, actor='a "b" \\', detail=detail, trace_id="t")
    columns = (
        "2026-11-22T12:00:00.000000+00:00",
        'a "b" \\',
        "x",
        "t",
        '{"a": {"b": 1.5, "y": null}, "z": [1, 2], "\\u00e9": "\\u00fc\\n"}',
        None,
        "t",
    )
    assert stored_leaf(9, *columns) == entry_leaf(entry)
    assert stored_leaf(10, *columns) != entry_leaf(entry)
