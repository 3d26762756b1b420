"""Inclusion and consistency proofs built from the stored tree, the proof bundles evidence
packages carry, and their offline check (no database: the bundle, and the checkpoint key
obtained independently, are all it takes)."""

import asyncpg

from hub.audit import merkle, repository
from hub.audit.checkpoints import checkpoint_problem
from hub.audit.export import entry_read
from hub.audit.rules import entry_leaf, keys_for, perfect_from
from hub.audit.schemas import (
    BundleCheck,
    Checkpoint,
    CheckpointKey,
    ConsistencyProof,
    EntryProof,
    InclusionProof,
    ProofBundle,
    StoredEntry,
)
from hub.kit.errors import ConflictError, NotFoundError


async def subtree_hashes(
    conn: asyncpg.Connection | asyncpg.Pool, ranges: list[merkle.Range]
) -> list[bytes]:
    """The hashes of these ranges of the sealed tree, from the fewest stored hashes."""
    stored = await repository.fetch_hashes(conn, keys_for(ranges))
    perfect = perfect_from(stored)
    try:
        return [merkle.range_hash(lo, hi, perfect) for lo, hi in ranges]
    except KeyError:
        raise ConflictError(
            "the proof needs entries that were pruned", code="audit_proof_pruned"
        ) from None


async def inclusion_proof(
    pool: asyncpg.Pool, seq: int, *, tree_size: int | None = None
) -> InclusionProof:
    """Prove entry `seq` is in the tree of `tree_size` (default: the latest checkpoint's)."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        entry = await repository.find_entry(conn, seq)
        if entry is None:
            raise NotFoundError(f"no audit entry {seq}")
        size = tree_size if tree_size is not None else await _checkpointed_size(conn)
        return await _prove(conn, entry, size=size)


async def _checkpointed_size(conn: asyncpg.Connection) -> int:
    latest = await repository.latest_checkpoint(conn)
    if latest is None:
        raise ConflictError("no checkpoint has been signed yet", code="audit_no_checkpoint")
    return latest.tree_size


async def _prove(conn: asyncpg.Connection, entry: StoredEntry, *, size: int) -> InclusionProof:
    tree = await repository.read_tree(conn)
    if entry.leaf_index is None or entry.leaf_hash is None:
        raise ConflictError(f"entry {entry.seq} is not sealed yet", code="audit_entry_unsealed")
    if not entry.leaf_index < size <= tree.size:
        raise ConflictError(
            f"entry {entry.seq} (position {entry.leaf_index}) is not in a sealed tree of {size}",
            code="audit_entry_not_covered",
        )
    path = await subtree_hashes(conn, merkle.inclusion_ranges(entry.leaf_index, size))
    return InclusionProof(
        seq=entry.seq,
        leaf_index=entry.leaf_index,
        leaf_hash=entry.leaf_hash.hex(),
        tree_size=size,
        path=[h.hex() for h in path],
    )


async def consistency_proof(
    pool: asyncpg.Pool, *, first: int | None = None, second: int | None = None
) -> ConsistencyProof:
    """Prove the checkpoint of `second` entries extends the one of `first` (default: the two
    newest checkpoints); `verified` says whether the proof checks against their signed roots."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        old, new = await _two_checkpoints(conn, first, second)
        ranges = merkle.consistency_ranges(old.tree_size, new.tree_size)
        path = await subtree_hashes(conn, ranges)
    verified = merkle.verify_consistency(
        first=old.tree_size,
        second=new.tree_size,
        first_root=bytes.fromhex(old.root_hash),
        second_root=bytes.fromhex(new.root_hash),
        path=path,
    )
    return ConsistencyProof(
        first=old.tree_size,
        second=new.tree_size,
        first_root=old.root_hash,
        second_root=new.root_hash,
        path=[h.hex() for h in path],
        verified=verified,
    )


async def _two_checkpoints(
    conn: asyncpg.Connection, first: int | None, second: int | None
) -> tuple[Checkpoint, Checkpoint]:
    if first is None or second is None:
        recent = await repository.list_checkpoints(conn, limit=2)
        if len(recent) < 2:
            raise ConflictError("fewer than two checkpoints", code="audit_no_checkpoint")
        first = recent[1].tree_size if first is None else first
        second = recent[0].tree_size if second is None else second
    if first > second:
        raise ConflictError(f"{first} > {second}: a log never shrinks", code="audit_bad_range")
    found = [await repository.checkpoint_of_size(conn, n) for n in (first, second)]
    if found[0] is None or found[1] is None:
        raise NotFoundError(f"no checkpoint of size {first if found[0] is None else second}")
    return found[0], found[1]


async def prove_entries(pool: asyncpg.Pool, seqs: list[int], *, key: CheckpointKey) -> ProofBundle:
    """A bundle proving these entries against the latest checkpoint; entries it does not
    cover yet are listed as pending."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        checkpoint = await repository.latest_checkpoint(conn)
        entries = await repository.find_entries(conn, seqs)
        proofs, pending = [], []
        for entry in entries:
            index = entry.leaf_index
            if checkpoint is None or index is None or index >= checkpoint.tree_size:
                pending.append(entry.seq)
                continue
            proof = await _prove(conn, entry, size=checkpoint.tree_size)
            proofs.append(EntryProof(entry=entry_read(entry), proof=proof))
    return ProofBundle(checkpoint=checkpoint, key=key, entries=proofs, pending=pending)


def check_bundle(bundle: ProofBundle, *, trusted: CheckpointKey) -> BundleCheck:
    """Check a bundle offline with a checkpoint key obtained independently (not the one the
    bundle carries): the checkpoint's signature, then each entry's leaf and path."""
    problems: list[str] = []
    checkpoint = bundle.checkpoint
    if checkpoint is None:
        problems.append("the bundle carries no checkpoint")
    else:
        problem = checkpoint_problem(checkpoint, public_pem=trusted.public_key)
        problems.extend([] if problem is None else [problem])
        problems.extend(_entry_problem(item, checkpoint) for item in bundle.entries)
    problems = [p for p in problems if p]
    return BundleCheck(
        ok=not problems,
        proven=len(bundle.entries) if not problems else 0,
        pending=len(bundle.pending),
        problems=problems,
    )


def _entry_problem(item: EntryProof, checkpoint: Checkpoint) -> str:
    """Why an entry is not proven by the checkpoint ('' when it is)."""
    proof, entry = item.proof, item.entry
    leaf = entry_leaf(entry)
    if leaf.hex() != proof.leaf_hash or proof.seq != entry.seq:
        return f"entry {entry.seq} does not match its leaf hash (altered)"
    ok = proof.tree_size == checkpoint.tree_size and merkle.verify_inclusion(
        leaf,
        index=proof.leaf_index,
        size=proof.tree_size,
        path=[bytes.fromhex(h) for h in proof.path],
        root=bytes.fromhex(checkpoint.root_hash),
    )
    return "" if ok else f"entry {entry.seq}'s inclusion proof does not lead to the signed root"
