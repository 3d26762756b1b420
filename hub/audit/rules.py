"""Pure rules of the audit log: what an entry's leaf hashes, which stored hashes a proof
needs, what a checkpoint signs, and where pruning may stop."""

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import msgspec

from hub.audit import merkle
from hub.audit.schemas import AuditEntryRead, Detail, StoredEntry

# Interior nodes are stored only at heights 8, 16, 24, ...: one row per 256 leaves, and any
# perfect subtree is then the fold of at most 128 stored hashes (leaves or nodes).
TILE_HEIGHT = 8
TILE = 1 << TILE_HEIGHT
CHECKPOINT_ORIGIN = "hub audit log v1"
Key = tuple[int, int]  # (height, index): a leaf (height 0) or a stored node

_encoder = msgspec.json.Encoder(order="sorted")


class _Body(msgspec.Struct, frozen=True):
    """The hashed form of an entry; fields in sorted order, as the sorted encoder writes them."""

    action: str
    actor: str
    at: str
    decision_id: str | None
    detail: Detail
    target: str
    trace_id: str | None


_decoder = msgspec.json.Decoder()


def canonical_time(at: datetime) -> str:
    """An entry's time as it is hashed: UTC, microseconds, `+00:00` (what PostgreSQL's
    `to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')` also writes)."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def entry_body(
    *,
    at: datetime | str,
    actor: str,
    action: str,
    target: str,
    detail: Detail,
    decision_id: str | None,
    trace_id: str | None,
) -> bytes:
    """Canonical (sorted-key) JSON of an entry without its seq; `at` as a datetime or as
    `canonical_time` already wrote it."""
    return _encoder.encode(
        _Body(
            action=action,
            actor=actor,
            at=at if isinstance(at, str) else canonical_time(at),
            decision_id=decision_id,
            detail=detail,
            target=target,
            trace_id=trace_id,
        )
    )


def stored_leaf(
    seq: int,
    at: str,
    actor: str,
    action: str,
    target: str,
    detail_json: str,
    decision_id: str | None,
    trace_id: str | None,
) -> bytes:
    """`entry_leaf` of an entry as its columns read back (`at` already in `canonical_time`'s
    form, `detail` as JSON text in any key order and spacing). Verification's hot path: the
    same bytes with one decode, one encode and one hash, and no keyword arguments."""
    detail = _decoder.decode(detail_json)
    body = _encoder.encode(_Body(action, actor, at, decision_id, detail, target, trace_id))
    return merkle.leaf_hash(seq.to_bytes(8, "big") + body)  # leaf_data's bytes, inlined


def leaf_data(*, seq: int, body: bytes) -> bytes:
    """The bytes a leaf commits to: the entry's seq (8 bytes, big-endian) and its body."""
    return seq.to_bytes(8, "big") + body


def entry_leaf(entry: StoredEntry | AuditEntryRead) -> bytes:
    """The RFC 9162 leaf hash of an entry (as stored, or as the API or an evidence package
    shows it), recomputed from its content."""
    body = entry_body(
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        target=entry.target,
        detail=entry.detail,
        decision_id=entry.decision_id,
        trace_id=entry.trace_id,
    )
    return merkle.leaf_hash(leaf_data(seq=entry.seq, body=body))


def is_stored_height(height: int) -> bool:
    """Whether the sealer keeps nodes of this height."""
    return height > 0 and height % TILE_HEIGHT == 0


def perfect_keys(start: int, height: int) -> list[Key]:
    """The stored hashes whose fold is the perfect subtree [start, start + 2**height)."""
    stored = height - height % TILE_HEIGHT
    first = start >> stored
    return [(stored, i) for i in range(first, first + (1 << (height - stored)))]


def pieces(lo: int, hi: int) -> list[tuple[int, int]]:
    """The perfect subtrees (start, height) that `merkle.range_hash(lo, hi)` combines."""
    out = []
    while hi > lo:
        n = hi - lo
        k = n if n & (n - 1) == 0 else merkle.split_point(n)
        out.append((lo, k.bit_length() - 1))
        lo += k
    return out


def keys_for(ranges: Iterable[merkle.Range]) -> set[Key]:
    """Every stored hash needed to compute the hashes of these ranges."""
    return {
        key
        for lo, hi in ranges
        for start, height in pieces(lo, hi)
        for key in perfect_keys(start, height)
    }


def perfect_from(stored: Mapping[Key, bytes]) -> merkle.PerfectHash:
    """A perfect-subtree hash function over fetched stored hashes (KeyError when missing)."""

    def perfect(start: int, height: int) -> bytes:
        return merkle.fold([stored[key] for key in perfect_keys(start, height)])

    return perfect


def checkpoint_note(*, size: int, root: bytes, signed_at: datetime) -> str:
    """The text a checkpoint signs: origin, tree size, root hash (hex) and time (UTC)."""
    at = signed_at.astimezone(UTC).isoformat(timespec="microseconds")
    return f"{CHECKPOINT_ORIGIN}\n{size}\n{root.hex()}\n{at}\n"


def checkpoint_due(last_signed_at: datetime | None, *, now: datetime, every_seconds: int) -> bool:
    """Whether a new checkpoint is due (none yet, or the last is `every_seconds` old)."""
    return last_signed_at is None or (now - last_signed_at).total_seconds() >= every_seconds


# No checkpoint for more than this many intervals: the sealer stopped signing (or stopped
# altogether), so the newest entries are covered by no signed head; alert AuditCheckpointStale.
STALE_AFTER_INTERVALS = 3


def checkpoint_stale(owed_since: datetime | None, *, now: datetime, every_seconds: int) -> bool:
    """Whether a checkpoint is overdue by more than `STALE_AFTER_INTERVALS` intervals;
    `owed_since` is when the newest was signed (None: nothing is owed, the log is empty)."""
    if owed_since is None:
        return False
    return (now - owed_since).total_seconds() > STALE_AFTER_INTERVALS * every_seconds


def prune_point(
    *, checkpoint_size: int, first_young: int | None, sealed: int, witness_holds: int | None = None
) -> int:
    """Where pruning may stop: below the first entry to keep, within the latest checkpoint,
    on a multiple of TILE (so what is pruned is summed up by stored nodes alone), and below
    the tile holding `witness_holds`, the size of a verifying witness that lacks checkpoints:
    its consistency proofs start there, and a size inside a tile needs that tile's leaves."""
    limit = min(checkpoint_size, sealed if first_young is None else first_young)
    if witness_holds is not None:
        limit = min(limit, witness_holds)
    return limit - limit % TILE
