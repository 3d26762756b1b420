"""Checking the audit log against a signed checkpoint (`hub audit verify`, the console).

Every remaining entry's leaf is recomputed from its content, the leaves are folded (after the
stored subtree hashes that stand for pruned entries) into the tree, and the tree of the
checkpoint's size must give the signed root. An edit shows as a leaf that no longer matches,
a deletion as a missing position, a cut tail as fewer entries than the checkpoint covers, and
a rewritten tree as a root the checkpoint did not sign.
"""

import asyncio
import contextlib
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import asyncpg
import msgspec

from hub.audit import merkle, repository
from hub.audit.checkpoints import checkpoint_problem
from hub.audit.rules import entry_body, keys_for, leaf_data, perfect_from
from hub.audit.schemas import Checkpoint, CheckpointKey, LogReport

_decode = msgspec.json.Decoder()
_SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+(-[0-9]+)?")


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

    def fold(self, leaves: Iterable[bytes]) -> bool:
        """Append checked leaves; False if the tree misses the signed root on the way."""
        append = self.edge.append
        for leaf in leaves:
            append(leaf)
            self.entries += 1
            if not self.check_root():
                return False
        return True

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
        leaf = _leaf_of(row)
        if leaf != row[9]:
            return leaves, (index, seq, f"entry {seq} was altered after it was sealed")
        leaves.append(leaf)
    return leaves, None


class Parallel(msgspec.Struct, frozen=True, kw_only=True):
    """Verify in `workers` processes, each reading its share of the entries over its own
    connection to `dsn` in the verifier's exported snapshot (for the CLI, not the API)."""

    dsn: str
    workers: int
    min_entries: int = 100_000


async def verify_log(
    pool: asyncpg.Pool,
    *,
    key: CheckpointKey | None,
    trusted: Checkpoint | None = None,
    parallel: Parallel | None = None,
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
        await _walk_all(conn, walk, parallel, start=tree.pruned_below, size=tree.size)
        return _outcome(base, walk)


async def _walk_all(
    conn: asyncpg.Connection, walk: _Walk, parallel: Parallel | None, *, start: int, size: int
) -> None:
    """Fold the entries in, here or in worker processes when there are many."""
    if not walk.check_root():
        return
    if parallel is not None and parallel.workers > 1 and size - start >= parallel.min_entries:
        await _walk_in_processes(conn, walk, parallel, span=(start, size))
    else:
        await _walk_entries(conn, walk, start=start, tree_size=size)


async def _walk_entries(
    conn: asyncpg.Connection, walk: _Walk, *, start: int, tree_size: int
) -> None:
    """Fold every sealed entry from `start` in; stop at the first problem."""
    async with contextlib.aclosing(repository.iter_sealed(conn, start=start)) as batches:
        async for rows in batches:
            if not walk.take(rows):
                return
    walk.finish(tree_size=tree_size)


async def _walk_in_processes(
    conn: asyncpg.Connection, walk: _Walk, parallel: Parallel, *, span: tuple[int, int]
) -> None:
    """Hash contiguous shares of the entries in worker processes (same snapshot), then fold
    their leaves in order here; stop at the first problem in tree order."""
    snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
    start, size = span
    step = -(-(size - start) // parallel.workers)
    shares: list[tuple[int, int | None]] = [
        (lo, min(lo + step, size)) for lo in range(start, size, step)
    ]
    shares[-1] = (shares[-1][0], None)  # the last share also takes entries past the tree state
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(len(shares), mp_context=get_context("spawn")) as processes:
        futures = [
            loop.run_in_executor(processes, hash_share, parallel.dsn, snapshot, lo, hi)
            for lo, hi in shares
        ]
        for future in futures:
            blob, problem = await future
            leaves = (blob[i : i + 32] for i in range(0, len(blob), 32))
            if not walk.fold(leaves) or problem is not None:
                walk.problem = walk.problem or problem
                processes.shutdown(wait=False, cancel_futures=True)
                return
    walk.finish(tree_size=size)


def hash_share(dsn: str, snapshot: str, lo: int, hi: int | None) -> tuple[bytes, Problem | None]:
    """In a worker process: the leaves of positions [lo, hi) (to the end when hi is None)
    and the first problem among them."""
    return asyncio.run(_hash_share(dsn, snapshot, lo, hi))


async def _hash_share(
    dsn: str, snapshot: str, lo: int, hi: int | None
) -> tuple[bytes, Problem | None]:
    if not _SNAPSHOT_ID.fullmatch(snapshot):
        raise ValueError(f"not a snapshot id: {snapshot!r}")
    conn = await asyncpg.connect(dsn)
    leaves: list[bytes] = []
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            await conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            batches = repository.iter_sealed(conn, start=lo, stop=hi)
            async with contextlib.aclosing(batches) as rows_of:
                async for rows in rows_of:
                    good, problem = check_rows(rows, expected=lo + len(leaves))
                    leaves.extend(good)
                    if problem is not None:
                        return b"".join(leaves), problem
    finally:
        await conn.close()
    end = lo + len(leaves)
    if hi is not None and end < hi:
        return b"".join(leaves), (end, None, f"the entry at position {end} is missing")
    return b"".join(leaves), None


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


def _leaf_of(row: asyncpg.Record) -> bytes:
    """The leaf hash recomputed from a `repository.VERIFY_COLUMNS` row (the hot loop)."""
    body = entry_body(
        at=row[2],
        actor=row[3],
        action=row[4],
        target=row[5],
        detail=_decode.decode(row[6]),
        decision_id=row[7],
        trace_id=row[8],
    )
    return merkle.leaf_hash(leaf_data(seq=row[1], body=body))
