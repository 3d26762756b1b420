"""RFC 9162 hashing and proofs against vectors computed by hand (and the CT reference root)."""

import hashlib

import pytest

from hub.audit import merkle


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf(data: bytes) -> bytes:
    return sha(b"\x00" + data)


def node(left: bytes, right: bytes) -> bytes:
    return sha(b"\x01" + left + right)


A, B, C, D, E = (leaf(x) for x in (b"a", b"b", b"c", b"d", b"e"))


def test_leaf_and_node_use_the_rfc_prefixes() -> None:
    assert merkle.leaf_hash(b"a") == sha(b"\x00a")
    assert merkle.node_hash(A, B) == sha(b"\x01" + A + B)
    assert merkle.EMPTY_ROOT.hex().startswith("e3b0c442")  # SHA-256 of nothing
    # The empty leaf of RFC 6962's test data.
    assert merkle.leaf_hash(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )


def test_roots_of_small_trees_by_hand() -> None:
    assert merkle.root_of([A]) == A
    assert merkle.root_of([A, B, C]) == node(node(A, B), C)
    assert merkle.root_of([A, B, C, D, E]) == node(node(node(A, B), node(C, D)), E)


def test_the_certificate_transparency_reference_root_of_eight_leaves() -> None:
    data = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        bytes(range(0x60, 0x70)),
    ]
    root = merkle.root_of([merkle.leaf_hash(d) for d in data])
    assert root.hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"


def test_compact_range_matches_the_recursive_root_and_reports_completed_subtrees() -> None:
    leaves = [merkle.leaf_hash(str(i).encode()) for i in range(37)]
    edge, completed = merkle.CompactRange(), {}
    for n, value in enumerate(leaves, start=1):
        edge.append(value, lambda h, i, v: completed.__setitem__((h, i), v))
        assert edge.root() == merkle.root_of(leaves[:n])
    assert completed[(1, 0)] == node(leaves[0], leaves[1])
    assert completed[(5, 0)] == merkle.root_of(leaves[:32])
    assert (5, 1) not in completed
    resumed = merkle.CompactRange(edge.size, edge.hashes)
    assert resumed.root() == edge.root()


@pytest.mark.parametrize(
    ("start", "count"), [(0, 0), (0, 1), (0, 300), (5, 27), (96, 700), (255, 2)]
)
def test_extending_by_many_leaves_is_appending_them_one_by_one(start: int, count: int) -> None:
    leaves = [merkle.leaf_hash(str(i).encode()) for i in range(start + count)]
    one, many = merkle.CompactRange(), merkle.CompactRange()
    for value in leaves[:start]:
        one.append(value)
        many.append(value)
    for value in leaves[start:]:
        one.append(value)
    many.extend(leaves[start:])
    assert (many.size, many.hashes) == (one.size, one.hashes)
    assert many.root() == merkle.root_of(leaves)


def test_inclusion_paths_by_hand() -> None:
    # Tree of 5: ((AB)(CD))E. C's path: D, then AB, then E.
    assert merkle.inclusion_ranges(2, 5) == [(3, 4), (0, 2), (4, 5)]
    root = merkle.root_of([A, B, C, D, E])
    path = [D, node(A, B), E]
    assert merkle.verify_inclusion(C, index=2, size=5, path=path, root=root)
    # E's path is the one subtree left of it.
    assert merkle.inclusion_ranges(4, 5) == [(0, 4)]
    assert merkle.verify_inclusion(
        E, index=4, size=5, path=[node(node(A, B), node(C, D))], root=root
    )
    assert not merkle.verify_inclusion(C, index=3, size=5, path=path, root=root)
    assert not merkle.verify_inclusion(D, index=2, size=5, path=path, root=root)
    assert not merkle.verify_inclusion(C, index=2, size=5, path=path[:-1], root=root)


def test_consistency_proofs_by_hand() -> None:
    # 3 -> 5: the old tree is (AB)C; the proof is C, D, AB, E.
    assert merkle.consistency_ranges(3, 5) == [(2, 3), (3, 4), (0, 2), (4, 5)]
    old, new = merkle.root_of([A, B, C]), merkle.root_of([A, B, C, D, E])
    path = [C, D, node(A, B), E]
    assert merkle.verify_consistency(first=3, second=5, first_root=old, second_root=new, path=path)
    # 2 -> 3: the old tree is a whole subtree, so only C is needed.
    assert merkle.consistency_ranges(2, 3) == [(2, 3)]
    assert merkle.verify_consistency(
        first=2, second=3, first_root=node(A, B), second_root=merkle.root_of([A, B, C]), path=[C]
    )
    forged_old = merkle.root_of([A, B, D])
    assert not merkle.verify_consistency(
        first=3, second=5, first_root=forged_old, second_root=new, path=path
    )


@pytest.mark.parametrize("size", [1, 2, 3, 7, 8, 9, 31, 64, 65])
def test_every_proof_of_a_tree_verifies_and_a_wrong_one_does_not(size: int) -> None:
    leaves = [merkle.leaf_hash(f"entry {i}".encode()) for i in range(size)]

    def perfect(start: int, height: int) -> bytes:
        return merkle.root_of(leaves[start : start + (1 << height)])

    root = merkle.root_of(leaves)
    for index in range(size):
        path = [
            merkle.range_hash(lo, hi, perfect) for lo, hi in merkle.inclusion_ranges(index, size)
        ]
        assert merkle.verify_inclusion(leaves[index], index=index, size=size, path=path, root=root)
        assert not merkle.verify_inclusion(
            b"\x00" * 32, index=index, size=size, path=path, root=root
        )
    for first in range(1, size):
        ranges = merkle.consistency_ranges(first, size)
        path = [merkle.range_hash(lo, hi, perfect) for lo, hi in ranges]
        old = merkle.root_of(leaves[:first])
        assert merkle.verify_consistency(
            first=first, second=size, first_root=old, second_root=root, path=path
        )
        assert not merkle.verify_consistency(
            first=first, second=size, first_root=old, second_root=merkle.leaf_hash(b"x"), path=path
        )
