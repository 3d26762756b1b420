"""Checking the audit log against a signed checkpoint (`hub audit verify`, the console).

Every remaining entry's leaf is recomputed from its content, the leaves are folded (after the
stored subtree hashes that stand for pruned entries) into the tree, and the tree of each
checkpoint's size must give its signed root. An edit shows as a leaf that no longer matches,
a deletion as a missing position, a cut tail as fewer entries than the checkpoint covers, and
a rewritten tree as a root the checkpoint did not sign.
"""

import contextlib
from collections import deque
from collections.abc import Sequence

import asyncpg
import msgspec

from hub.audit import merkle, repository
from hub.audit.checkpoints import checkpoint_problem
from hub.audit.rules import keys_for, perfect_from, stored_leaf
from hub.audit.schemas import Checkpoint, CheckpointKey, LogReport


class _Walk:
    """The state of one pass over the entries in tree order, with the checkpoints whose
    signed roots the tree must give on the way (ascending by size; the last is the anchor)."""

    def __init__(self, edge: merkle.CompactRange, checkpoints: Sequence[Checkpoint]) -> None:
        self.edge = edge
        self.anchor = checkpoints[-1] if checkpoints else None
        self.pending = deque(checkpoints)  # a witness file holds ~500k a year: no list.pop(0)
        self.matched = 0
        self.entries = 0
        self.problem: Problem | None = None

    def take(self, rows: Sequence[asyncpg.Record]) -> bool:
        """Check and fold a batch in; False (with `problem` set) at the first bad entry."""
        leaves, problem = check_rows(rows, expected=self.edge.size)
        if not self.fold(leaves):
            return False
        if problem is not None:
            self.problem = problem
            return False
        return True

    def fold(self, leaves: Sequence[bytes]) -> bool:
        """Append checked leaves; False if the tree misses a signed root on the way."""
        while self.pending and self.pending[0].tree_size <= self.edge.size + len(leaves):
            upto = self.pending[0].tree_size - self.edge.size
            self._extend(leaves[:upto])
            if not self.check_root():
                return False
            leaves = leaves[upto:]
        self._extend(leaves)
        return True

    def _extend(self, leaves: Sequence[bytes]) -> None:
        self.edge.extend(leaves)
        self.entries += len(leaves)

    def finish(self, *, tree_size: int) -> None:
        """After the last entry: the anchor and the tree state must be fully covered."""
        size, checkpoint = self.edge.size, self.anchor
        if checkpoint is not None and size < checkpoint.tree_size:
            missing = checkpoint.tree_size - size
            self._fail(
                size,
                None,
                f"the log ends at {size} entries but the checkpoint signed at "
                f"{checkpoint.signed_at.isoformat()} covers {checkpoint.tree_size}: the last "
                f"{missing} were deleted",
            )
        elif size < tree_size:
            self._fail(size, None, f"the log ends at {size} entries but {tree_size} were sealed")

    def check_root(self) -> bool:
        """At each pending checkpoint's size (the tree's now), the tree must give its root."""
        root = None
        while self.pending and self.pending[0].tree_size == self.edge.size:
            checkpoint = self.pending.popleft()
            root = root or self.edge.root().hex()
            if root != checkpoint.root_hash:
                return self._fail(
                    None,
                    None,
                    f"the entries do not give the root signed for {checkpoint.tree_size} "
                    f"entries at {checkpoint.signed_at.isoformat()} (the tree was rewritten)",
                )
            self.matched += 1
        return True

    def _fail(self, index: int | None, seq: int | None, problem: str) -> bool:
        self.problem = (index, seq, problem)
        return False


Problem = tuple[int | None, int | None, str]  # (position, seq, what is wrong)


def check_rows(
    rows: Sequence[asyncpg.Record], *, expected: int
) -> tuple[list[bytes], Problem | None]:
    """Recompute the leaves of consecutive entries from position `expected`; the good leaves
    and the first problem (a missing position or an entry that no longer matches its leaf)."""
    leaves: list[bytes] = []
    for row in rows:
        index, seq, position = row[0], row[1], expected + len(leaves)
        if index != position:
            return leaves, (position, None, f"the entry at position {position} is missing")
        leaf = stored_leaf(seq, row[2], row[3], row[4], row[5], row[6], row[7], row[8])
        if leaf != row[9]:
            return leaves, (index, seq, f"entry {seq} was altered after it was sealed")
        leaves.append(leaf)
    return leaves, None


async def verify_log(
    pool: asyncpg.Pool,
    *,
    key: CheckpointKey | None,
    trusted: Sequence[Checkpoint] = (),
) -> LogReport:
    """Check every remaining entry against the `trusted` checkpoints (e.g. every one the
    witness holds) or, without them, the newest checkpoint in the database; one
    repeatable-read snapshot throughout.

    The largest trusted checkpoint anchors the check (a cut tail shows against it); at every
    other one's size the tree must give that one's root too, so a log rewritten and sealed
    again shows against what the witness was handed before, even when the newest checkpoint
    it holds is of the rewritten log. Those that entries were pruned past are not checked."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        tree = await repository.read_tree(conn)
        newest = await repository.latest_checkpoint(conn)
        given = list(trusted) or ([] if newest is None else [newest])
        # Ascending by size; of two of one size, the one signed last is the anchor's candidate.
        ordered = sorted(given, key=lambda c: (c.tree_size, c.signed_at))
        anchor = ordered[-1] if ordered else None
        base = LogReport(
            ok=True,
            entries=0,
            tree_size=tree.size,
            checkpoint_size=None if anchor is None else anchor.tree_size,
            checkpoint_at=None if anchor is None else anchor.signed_at,
            pruned_below=tree.pruned_below,
            unsealed=await repository.count_unsealed(conn),
        )
        problem = _distrust_all(ordered, key, pruned_below=tree.pruned_below)
        edge = await _pruned_edge(conn, tree.pruned_below)
        if problem is not None or isinstance(edge, str):
            return msgspec.structs.replace(base, ok=False, problem=problem or str(edge))
        walk = _Walk(edge, [c for c in ordered if c.tree_size >= tree.pruned_below])
        if walk.check_root():
            await _walk_entries(conn, walk, start=tree.pruned_below, tree_size=tree.size)
        return _outcome(base, walk)


async def _walk_entries(
    conn: asyncpg.Connection, walk: _Walk, *, start: int, tree_size: int
) -> None:
    """Fold every sealed entry from `start` in; stop at the first problem."""
    async with contextlib.aclosing(repository.iter_sealed(conn, start=start)) as batches:
        async for rows in batches:
            if not walk.take(rows):
                return
    walk.finish(tree_size=tree_size)


def _outcome(base: LogReport, walk: _Walk) -> LogReport:
    """The report of a finished (or stopped) walk."""
    if walk.problem is None:
        return msgspec.structs.replace(base, entries=walk.entries, checkpoints_matched=walk.matched)
    index, seq, problem = walk.problem
    return msgspec.structs.replace(
        base,
        ok=False,
        entries=walk.entries,
        checkpoints_matched=walk.matched,
        broken_index=index,
        broken_seq=seq,
        problem=problem,
    )


def _distrust_all(
    ordered: Sequence[Checkpoint], key: CheckpointKey | None, *, pruned_below: int
) -> str | None:
    """Why the checkpoints cannot anchor the check, or None: every one must be signed by the
    key, and the anchor (the last) must not lie below the pruned entries."""
    for checkpoint in ordered:
        problem = _distrust(checkpoint, key)
        if problem is not None:
            return problem
    if ordered and ordered[-1].tree_size < pruned_below:
        return f"entries were pruned past the checkpoint ({pruned_below} > {ordered[-1].tree_size})"
    return None


def _distrust(checkpoint: Checkpoint, key: CheckpointKey | None) -> str | None:
    """Why this checkpoint cannot be trusted, or None."""
    if key is None:
        return "there is a checkpoint but no checkpoint key to verify it with"
    if checkpoint.key_id != key.key_id:
        return f"the checkpoint was signed by key {checkpoint.key_id}, not {key.key_id}"
    return checkpoint_problem(checkpoint, public_pem=key.public_key)


async def _pruned_edge(conn: asyncpg.Connection, pruned_below: int) -> merkle.CompactRange | str:
    """The tree's edge over the pruned entries, from the stored subtree hashes (or why not)."""
    ranges = merkle.perfect_ranges(pruned_below)
    stored = await repository.fetch_hashes(conn, keys_for(ranges))
    perfect = perfect_from(stored)
    try:
        hashes = [merkle.range_hash(lo, hi, perfect) for lo, hi in ranges]
    except KeyError as missing:
        return f"the stored subtree hash {missing} standing for pruned entries is missing"
    return merkle.CompactRange(pruned_below, hashes)
