"""Checking the audit log against a signed checkpoint (`hub audit verify`, the console).

Every remaining entry's leaf is recomputed from its content, the leaves are folded (after the
stored subtree hashes that stand for pruned entries) into the tree, and the tree of the
checkpoint's size must give the signed root. An edit shows as a leaf that no longer matches,
a deletion as a missing position, a cut tail as fewer entries than the checkpoint covers, and
a rewritten tree as a root the checkpoint did not sign.
"""

import contextlib
from collections.abc import Sequence

import asyncpg
import msgspec

from hub.audit import merkle, repository
from hub.audit.checkpoints import checkpoint_problem
from hub.audit.rules import keys_for, perfect_from, stored_leaf
from hub.audit.schemas import Checkpoint, CheckpointKey, LogReport


class _Walk:
    """The state of one pass over the entries in tree order."""

    def __init__(self, edge: merkle.CompactRange, checkpoint: Checkpoint | None) -> None:
        self.edge = edge
        self.checkpoint = checkpoint
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
        """Append checked leaves; False if the tree misses the signed root on the way."""
        checkpoint, size = self.checkpoint, self.edge.size
        if checkpoint is not None and size < checkpoint.tree_size <= size + len(leaves):
            upto = checkpoint.tree_size - size
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
        """After the last entry: the checkpoint and the tree state must be fully covered."""
        size, checkpoint = self.edge.size, self.checkpoint
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
        """At the checkpoint's size, the tree must give its signed root."""
        checkpoint = self.checkpoint
        if checkpoint is None or self.edge.size != checkpoint.tree_size:
            return True
        if self.edge.root().hex() == checkpoint.root_hash:
            return True
        return self._fail(
            None,
            None,
            f"the entries do not give the root signed for {checkpoint.tree_size} entries "
            "(the tree was rewritten)",
        )

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
    trusted: Checkpoint | None = None,
) -> LogReport:
    """Check every remaining entry against `trusted` (e.g. the witness's copy) or, without
    it, the newest checkpoint in the database; one repeatable-read snapshot throughout."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        tree = await repository.read_tree(conn)
        checkpoint = trusted or await repository.latest_checkpoint(conn)
        base = LogReport(
            ok=True,
            entries=0,
            tree_size=tree.size,
            checkpoint_size=None if checkpoint is None else checkpoint.tree_size,
            checkpoint_at=None if checkpoint is None else checkpoint.signed_at,
            pruned_below=tree.pruned_below,
            unsealed=await repository.count_unsealed(conn),
        )
        problem = _distrust(checkpoint, key, pruned_below=tree.pruned_below)
        edge = await _pruned_edge(conn, tree.pruned_below)
        if problem is not None or isinstance(edge, str):
            return msgspec.structs.replace(base, ok=False, problem=problem or str(edge))
        walk = _Walk(edge, checkpoint)
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
        return msgspec.structs.replace(base, entries=walk.entries)
    index, seq, problem = walk.problem
    return msgspec.structs.replace(
        base,
        ok=False,
        entries=walk.entries,
        broken_index=index,
        broken_seq=seq,
        problem=problem,
    )


def _distrust(
    checkpoint: Checkpoint | None, key: CheckpointKey | None, *, pruned_below: int
) -> str | None:
    """Why the checkpoint cannot anchor the check, or None."""
    if checkpoint is None:
        return None
    if key is None:
        return "there is a checkpoint but no checkpoint key to verify it with"
    if checkpoint.key_id != key.key_id:
        return f"the checkpoint was signed by key {checkpoint.key_id}, not {key.key_id}"
    problem = checkpoint_problem(checkpoint, public_pem=key.public_key)
    if problem is None and checkpoint.tree_size < pruned_below:
        return f"entries were pruned past the checkpoint ({pruned_below} > {checkpoint.tree_size})"
    return problem


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
