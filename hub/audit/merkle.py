"""RFC 9162 Merkle tree hashing, inclusion and consistency proofs (pure; no I/O, no hub types).

leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right); a tree of n leaves splits
at k, the largest power of two smaller than n (RFC 9162, section 2.1.1). A proof is a list of
subtree hashes; `inclusion_ranges` and `consistency_ranges` name the leaf ranges [lo, hi) whose
hashes make it, so the caller can fetch only those, and the `verify_*` functions check a proof
exactly as RFC 9162 sections 2.1.3.2 and 2.1.4.2 describe.
"""

import hashlib
from collections.abc import Callable, Iterable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()
Range = tuple[int, int]
# The hash of the perfect subtree [start, start + 2**height): how callers supply stored hashes.
PerfectHash = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    """The hash of one leaf."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of the given leaf hashes, by the recursive definition (for small trees)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = split_point(len(leaves))
    return node_hash(root_of(leaves[:k]), root_of(leaves[k:]))


def fold(hashes: Sequence[bytes]) -> bytes:
    """The root of a perfect subtree from its 2**h equal-height children, left to right."""
    level = list(hashes)
    sha256, prefix = hashlib.sha256, b"\x01"
    while len(level) > 1:
        # node_hash inlined: this loop is most of verifying a long log.
        pairs = zip(level[::2], level[1::2], strict=True)
        level = [sha256(prefix + a + b).digest() for a, b in pairs]
    return level[0]


class CompactRange:
    """The roots of the perfect subtrees that cover leaves [0, size), left to right: enough to
    append leaves and compute the root without keeping the leaves (one hash per bit of size)."""

    __slots__ = ("_hashes", "size")

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()) -> None:
        self.size = size
        self._hashes = list(hashes)
        if len(self._hashes) != size.bit_count():
            raise ValueError(f"a range of {size} leaves has {size.bit_count()} roots")

    @property
    def hashes(self) -> list[bytes]:
        """The subtree roots, largest (leftmost) first."""
        return list(self._hashes)

    def append(self, leaf: bytes, on_node: Callable[[int, int, bytes], None] | None = None) -> None:
        """Add a leaf hash; `on_node(height, index, hash)` hears of every subtree it completes."""
        hashes, n, height, value = self._hashes, self.size, 0, leaf
        while n & 1:
            value = node_hash(hashes.pop(), value)
            n >>= 1
            height += 1
            if on_node is not None:
                on_node(height, ((self.size + 1) >> height) - 1, value)
        hashes.append(value)
        self.size += 1

    def extend(self, leaves: Sequence[bytes]) -> None:
        """Add many leaf hashes, as `append` would one by one (without `on_node`): whole
        aligned subtrees are folded level by level, most of the cost in hashlib."""
        done, count = 0, len(leaves)
        while done < count:
            # The largest perfect subtree that starts at this size and fits in what is left.
            width = self.size & -self.size or 1 << count.bit_length()
            while width > count - done:
                width >>= 1
            self._push(fold(leaves[done : done + width]), width.bit_length() - 1)
            done += width

    def _push(self, value: bytes, height: int) -> None:
        """Add the root of a perfect subtree of `height` that starts at this size."""
        hashes, n = self._hashes, self.size >> height
        while n & 1:
            value = node_hash(hashes.pop(), value)
            n >>= 1
        hashes.append(value)
        self.size += 1 << height

    def root(self) -> bytes:
        """The tree head of the leaves so far (RFC 9162 MTH)."""
        if not self._hashes:
            return EMPTY_ROOT
        value = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            value = node_hash(left, value)
        return value


def perfect_ranges(size: int) -> list[Range]:
    """The perfect subtrees covering [0, size), largest first (what a CompactRange holds)."""
    ranges, start = [], 0
    for bit in reversed(range(size.bit_length())):
        if size >> bit & 1:
            ranges.append((start, start + (1 << bit)))
            start += 1 << bit
    return ranges


def range_hash(lo: int, hi: int, perfect: PerfectHash) -> bytes:
    """MTH(D[lo:hi]) for a range the RFC recursion produces (lo aligned to the split)."""
    n = hi - lo
    if n & (n - 1) == 0:
        return perfect(lo, n.bit_length() - 1)
    k = split_point(n)
    return node_hash(perfect(lo, k.bit_length() - 1), range_hash(lo + k, hi, perfect))


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The subtrees of PATH(index, D[size]) (RFC 9162 2.1.3.1), the leaf's sibling first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    ranges, lo, hi = [], 0, size
    while hi - lo > 1:
        k = split_point(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    return ranges[::-1]


def consistency_ranges(first: int, second: int) -> list[Range]:
    """The subtrees of PROOF(first, D[second]) (RFC 9162 2.1.4.1); empty when nothing to prove."""
    if not 0 <= first <= second:
        raise ValueError(f"no consistency proof from {first} to {second}")
    if first in (0, second):
        return []
    ranges, lo, hi, m, whole = [], 0, second, first, True
    while m != hi - lo:
        k = split_point(hi - lo)
        if m <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        ranges.append((lo, hi))
    return ranges[::-1]


def verify_inclusion(
    leaf: bytes, *, index: int, size: int, path: Sequence[bytes], root: bytes
) -> bool:
    """True when `path` proves that `leaf` is leaf `index` of the tree of `size` with `root`."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    *, first: int, second: int, first_root: bytes, second_root: bytes, path: Sequence[bytes]
) -> bool:
    """True when `path` proves the tree of `second` leaves extends the tree of `first`."""
    if not 0 <= first <= second:
        return False
    if first == second:
        return not path and first_root == second_root
    if first == 0:
        return not path
    if not path:
        return False
    proof = [first_root, *path] if first & (first - 1) == 0 else list(path)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_root and sr == second_root and sn == 0
