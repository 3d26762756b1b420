"""FF1 format-preserving encryption (NIST SP 800-38G, section 5.1) over whole numbers.

A keyed permutation of the numbers of `digits` digits in base `radix`: the feeds show each
agency its own pseudonym of a feed position (ADR 0042), a number of the same shape that says
nothing of how many positions lie between two it was shown. No maintained FF1 package exists
on PyPI (the `ff3` package implements FF3-1, the standard's other mode, patched after FF3 was
broken in 2017), so this is the standard's algorithm on `cryptography`'s AES, checked against
NIST's published samples (tests/hub/kit/test_fpe.py).

Numbers go in and out as Python ints; a batch is encrypted round by round, so each round costs
one AES call for the whole batch instead of one per number (a page's positions at once).
"""

import math
import struct
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

_BLOCK = 16
_HALF = 8
_LOW = 2**64 - 1
_ROUNDS = 10


class FF1:
    """FF1 under one AES key, for numbers of `digits` digits in base `radix` (the tweak, per
    call, separates domains: the same key gives every tweak its own permutation)."""

    def __init__(self, key: bytes, *, radix: int = 10, digits: int) -> None:
        if not 2 <= radix <= 2**16 or radix**digits < 1_000_000 or digits < 2:
            raise ValueError("FF1 needs radix in [2, 65536] and a domain of at least 10^6")
        if radix ** (digits - digits // 2) >= 2**96:  # NUM(B) and S each fit one block
            raise ValueError("this FF1 keeps half a number within 12 bytes")
        # ECB is the block cipher CIPH_K itself: FF1's CBC-MAC chaining is done here, one
        # block per number, so a batch goes through AES in one call.
        self._aes = Cipher(algorithms.AES(key), modes.ECB())  # noqa: S305
        self.radix, self.digits = radix, digits
        self.size = radix**digits
        self._u = digits // 2
        self._v = digits - self._u
        self._b = math.ceil(math.ceil(self._v * math.log2(radix)) / 8)
        self._d = 4 * math.ceil(self._b / 4) + 4
        self._states = lru_cache(maxsize=1024)(self._state)

    def encrypt(self, numbers: Sequence[int], *, tweak: bytes = b"") -> list[int]:
        """The numbers' images under the permutation of `tweak`."""
        a, b = self._split(numbers)
        rounds = self._rounds(tweak, len(numbers))
        for i in range(_ROUNDS):
            modulus = self.radix ** (self._u if i % 2 == 0 else self._v)
            a, b = b, [(x + y) % modulus for x, y in zip(a, rounds.y(i, b), strict=True)]
        return [x * self.radix**self._v + y for x, y in zip(a, b, strict=True)]

    def decrypt(self, numbers: Sequence[int], *, tweak: bytes = b"") -> list[int]:
        """The numbers whose images under the permutation of `tweak` these are."""
        a, b = self._split(numbers)
        rounds = self._rounds(tweak, len(numbers))
        for i in reversed(range(_ROUNDS)):
            modulus = self.radix ** (self._u if i % 2 == 0 else self._v)
            a, b = [(x - y) % modulus for x, y in zip(b, rounds.y(i, a), strict=True)], a
        return [x * self.radix**self._v + y for x, y in zip(a, b, strict=True)]

    def _rounds(self, tweak: bytes, count: int) -> "_Rounds":
        """The round function for one batch of `count` numbers under `tweak`."""
        state, prefix = self._states(tweak)
        return _Rounds(self._aes.encryptor(), state, prefix, b=self._b, d=self._d, count=count)

    def _split(self, numbers: Sequence[int]) -> tuple[list[int], list[int]]:
        """Each number's first u digits and last v digits (A and B of the standard)."""
        if any(not 0 <= n < self.size for n in numbers):
            raise ValueError(f"FF1 numbers must lie in [0, {self.size})")
        high = self.radix**self._v
        return [n // high for n in numbers], [n % high for n in numbers]

    def _state(self, tweak: bytes) -> tuple[int, bytes]:
        """CBC-MAC's chaining value after P and every block of Q but the last, and the start
        of Q's last block (constant per tweak): only [i] || NUM(B) changes per round."""
        t = len(tweak)
        p = (
            bytes([1, 2, 1])
            + self.radix.to_bytes(3, "big")
            + bytes([10, self._u % 256])
            + self.digits.to_bytes(4, "big")
            + t.to_bytes(4, "big")
        )
        # Q = T || [0]^pad || [i] || NUM(B), a whole number of blocks; its last block holds
        # the last 16 - b - 1 bytes of T || pad, then [i] || NUM(B).
        q_head = tweak + bytes((-t - self._b - 1) % _BLOCK)
        cut = len(q_head) - (_BLOCK - self._b - 1)
        fixed, prefix = p + q_head[:cut], q_head[cut:]
        encryptor = self._aes.encryptor()
        state = 0
        for k in range(0, len(fixed), _BLOCK):
            block = state ^ int.from_bytes(fixed[k : k + _BLOCK], "big")
            state = int.from_bytes(encryptor.update(block.to_bytes(_BLOCK, "big")), "big")
        return state, prefix


class _Rounds:
    """The rounds of one batch: one AES context, the tweak's CBC-MAC state and, for the common
    shape, the struct formats, made once per batch instead of once per round."""

    def __init__(
        self, encryptor: Any, state: int, prefix: bytes, *, b: int, d: int, count: int
    ) -> None:
        self._encryptor = encryptor
        self._state, self._prefix = state, prefix
        self._b, self._d = b, d
        self._pack, self._unpack = _formats(count)

    def y(self, i: int, halves: list[int]) -> list[int]:
        """y of round `i` for each half: NUM(S), S the first d bytes of R = PRF(P || Q)
        (steps 6.i-6.iv); d is at most 16 (b <= 12), so S lies within R."""
        if not halves:
            return []
        # Q's last block is prefix || [i] || NUM(B): everything but NUM(B) is one int per round.
        base = self._state ^ int.from_bytes(self._prefix + bytes([i]) + bytes(self._b), "big")
        if self._d == _HALF:
            return self._half_block(base, halves)
        r = self._encryptor.update(b"".join([(base ^ h).to_bytes(_BLOCK, "big") for h in halves]))
        d = self._d
        return [int.from_bytes(r[k : k + d], "big") for k in range(0, len(r), _BLOCK)]

    def _half_block(self, base: int, halves: list[int]) -> list[int]:
        """The common shape (d = 8, so b <= 4): each block is base's first half, then its
        second half xor NUM(B); y is the first half of each AES output. One struct call packs
        the whole batch and one reads it (a tenth of the cost of a bytes object per number)."""
        low = base & _LOW
        args: list[Any] = [(base >> 64).to_bytes(_HALF, "big")] * (2 * len(halves))
        args[1::2] = [low ^ h for h in halves]
        return list(self._unpack.unpack(self._encryptor.update(self._pack.pack(*args))))


@lru_cache(maxsize=64)
def _formats(count: int) -> tuple[struct.Struct, struct.Struct]:
    """The common shape's formats for `count` numbers: blocks packed as (8 bytes, u64), AES
    output read as (u64, 8 skipped). Pages come in a few sizes, so compiled once each."""
    return struct.Struct(">" + "8sQ" * count), struct.Struct(">" + "Q8x" * count)
