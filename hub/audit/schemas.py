"""Audit entries as they are written and read, checkpoints, proofs and verification reports."""

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

# Only JSON-safe scalars and containers of them; never raw PII (store hashes or ids).
Detail = dict[str, str | int | bool | list[str] | list[int] | None]


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One thing that happened: who did what to which target, and why it was allowed."""

    actor: str
    action: str
    target: str
    detail: Detail = {}
    decision_id: str | None = None
    trace_id: str | None = None


class LogReport(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of checking the log against a signed checkpoint.

    `entries` were recomputed from their content; `checkpoint_size` entries (from
    `pruned_below`) had to give the signed root, and `checkpoints_matched` signed roots were
    matched in all (the anchor's and those of earlier checkpoints a witness holds).
    `broken_seq`/`broken_index` name the first entry found altered or missing; `unsealed`
    entries are not yet in the tree."""

    ok: bool
    entries: int
    tree_size: int
    checkpoint_size: int | None
    checkpoint_at: datetime | None
    pruned_below: int
    unsealed: int
    broken_index: int | None = None
    broken_seq: int | None = None
    problem: str | None = None
    checkpoints_matched: int = 0


class StoredEntry(msgspec.Struct, frozen=True, kw_only=True):
    """An entry as read back; `leaf_index` and `leaf_hash` stay None until it is sealed."""

    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: Detail
    decision_id: str | None
    trace_id: str | None
    leaf_index: int | None
    leaf_hash: bytes | None


class AuditQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Filters of an audit search: actor and action by prefix, target by substring, a time
    range [since, until) and the keyset cursor `before_seq` (entries come newest first)."""

    actor: str | None = None
    action: str | None = None
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_seq: int | None = None


class AuditEntryRead(msgspec.Struct, frozen=True, kw_only=True):
    """An entry as the API shows it: its position in the Merkle tree and leaf hash (hex),
    both None until the sealer has integrated it. `detail` is typed loosely here only
    because OpenAPI generation cannot express `Detail`'s union of two list types."""

    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    decision_id: str | None
    trace_id: str | None
    leaf_index: int | None
    leaf_hash: str | None


class AuditPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a search and the cursor of the next (None on the last page)."""

    entries: list[AuditEntryRead]
    next_before_seq: int | None = None


class ExportRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Export the entries matching `query` (at most `limit`) as CSV or JSON."""

    query: AuditQuery = AuditQuery()
    format: Literal["csv", "json"] = "json"
    limit: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 10_000


class SignedManifest(msgspec.Struct, frozen=True, kw_only=True):
    """What an export holds (file names and their SHA-256) and the hub's Ed25519 signature
    over the manifest's canonical JSON (`manifest` exactly as sent, base64 signature)."""

    manifest: str
    signature: str
    key_id: str
    public_key: str


class AuditExport(msgspec.Struct, frozen=True, kw_only=True):
    """An export: the file's name and text, and its signed manifest."""

    filename: str
    content: str
    count: int
    signed: SignedManifest


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    """A signed tree head: `note` (origin, size, root hex, time) signed with the hub's
    checkpoint key (Ed25519, base64 `signature` over the note's UTF-8 bytes)."""

    tree_size: int
    root_hash: str
    signed_at: datetime
    key_id: str
    signature: str
    note: str


HashHex = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]


class WitnessRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the hub POSTs to a verifying witness (`hub audit witness`): a checkpoint and the
    consistency proof from the size the hub believes the witness holds (`old_size`, 0 for a
    witness that holds none), as in C2SP tlog-witness's add-checkpoint, in JSON."""

    old_size: Annotated[int, msgspec.Meta(ge=0)]
    # A consistency proof has at most about 2 x log2(size) hashes: 128 covers any log.
    consistency: Annotated[list[HashHex], msgspec.Meta(max_length=128)]
    checkpoint: Checkpoint


class WitnessAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """A verifying witness's answer to an accepted checkpoint: the size it now holds."""

    tree_size: int


class CheckpointKey(msgspec.Struct, frozen=True, kw_only=True):
    """The public half of the checkpoint key, for witnesses and offline verifiers."""

    key_id: str
    algorithm: str = "Ed25519"
    public_key: str


class CheckpointPage(msgspec.Struct, frozen=True, kw_only=True):
    """Checkpoints newest first."""

    checkpoints: list[Checkpoint]


class WitnessStatus(msgspec.Struct, frozen=True, kw_only=True):
    """How far the outside witness (`HUB_AUDIT_WITNESS`) is behind: which kind it is (never
    its address, which may carry credentials), how many signed checkpoints it has not taken
    (counted up to 10,000) and when the oldest of them was signed."""

    kind: Literal["none", "file", "url"]
    unwitnessed: int
    owed_since: datetime | None


class InclusionProof(msgspec.Struct, frozen=True, kw_only=True):
    """RFC 9162 inclusion proof of one entry in the tree of `tree_size` leaves (hex hashes,
    the leaf's sibling first)."""

    seq: int
    leaf_index: int
    leaf_hash: str
    tree_size: int
    path: list[str]


class ConsistencyProof(msgspec.Struct, frozen=True, kw_only=True):
    """RFC 9162 consistency proof that the tree of `second` leaves extends that of `first`."""

    first: int
    second: int
    first_root: str
    second_root: str
    path: list[str]
    verified: bool


class EntryProof(msgspec.Struct, frozen=True, kw_only=True):
    """An entry and its inclusion proof, enough to recompute its leaf offline."""

    entry: AuditEntryRead
    proof: InclusionProof


class ProofBundle(msgspec.Struct, frozen=True, kw_only=True):
    """What an evidence package carries to prove its audit entries offline: the signed
    checkpoint, the checkpoint key, and each entry with its path; `pending` lists the seqs
    that were not yet covered by a checkpoint."""

    checkpoint: Checkpoint | None
    key: CheckpointKey
    entries: list[EntryProof]
    pending: list[int]


class BundleCheck(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of checking a proof bundle offline."""

    ok: bool
    proven: int
    pending: int
    problems: list[str]


class SealReport(msgspec.Struct, frozen=True, kw_only=True):
    """What one sealer run did; `busy` when another sealer held the lock."""

    sealed: int
    tree_size: int
    checkpoint: Checkpoint | None = None
    witnessed: int = 0
    busy: bool = False


class PruneReport(msgspec.Struct, frozen=True, kw_only=True):
    """Entries below `pruned_below` (in tree order) are gone; their subtree hashes remain.

    `witness_holds`: the size held by a verifying witness that lacks checkpoints, below whose
    tile pruning stopped (None: no such witness, or it has every checkpoint)."""

    pruned_below: int
    deleted: int
    witness_holds: int | None = None
