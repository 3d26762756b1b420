"""The sealer: the one writer of the audit tree (ADR 0011).

Appends never wait on each other; this job, under a transaction-scoped advisory lock, gives
committed unsealed entries their places in the Merkle tree in the order it sees them, stores
the subtree hashes proofs need, signs a checkpoint when one is due and hands checkpoints to
the witness. Each batch is one transaction, so a crash loses nothing and a second run (or a
second worker) just finds less to do.
"""

from pathlib import Path

import asyncpg
import httpx
import structlog

from hub.audit import repository
from hub.audit.checkpoints import (
    WITNESS_TIMEOUT_SECONDS,
    CheckpointSigner,
    append_to_witness_file,
    is_url_witness,
)
from hub.audit.errors import WitnessRefusedError
from hub.audit.merkle import CompactRange, consistency_ranges
from hub.audit.metrics import default_metrics
from hub.audit.proofs import subtree_hashes
from hub.audit.rules import checkpoint_due, entry_leaf, is_stored_height
from hub.audit.schemas import Checkpoint, CheckpointKey, SealReport, WitnessRequest
from hub.audit.witness import offer
from hub.kit.clock import Clock, utcnow
from hub.kit.db import Database
from hub.kit.errors import ConflictError
from hub.settings import Settings

log = structlog.get_logger(__name__)
SEAL_BATCH = 5_000
WITNESS_BATCH = 100


class Sealer:
    """Seals pending entries, signs checkpoints every `checkpoint_seconds`, feeds the witness."""

    def __init__(
        self,
        db: Database,
        *,
        signer: CheckpointSigner,
        checkpoint_seconds: int,
        witness: str = "",
        clock: Clock = utcnow,
        batch: int = SEAL_BATCH,
    ) -> None:
        self._db, self._signer, self._clock = db, signer, clock
        self._every, self._witness, self._batch = checkpoint_seconds, witness, batch

    @classmethod
    def from_settings(cls, settings: Settings, db: Database) -> "Sealer":
        """The sealer these settings describe (checkpoint key under `secrets_dir`)."""
        return cls(
            db,
            signer=CheckpointSigner.from_dir(settings.secrets_dir),
            checkpoint_seconds=settings.audit_checkpoint_seconds,
            witness=settings.audit_witness,
        )

    @property
    def key(self) -> CheckpointKey:
        """The public half of the key this sealer signs with."""
        return self._signer.public

    async def run(self, *, force_checkpoint: bool = False) -> SealReport:
        """Seal everything committed, then sign a checkpoint if due (or forced) and push."""
        sealed, busy = await self.seal_pending()
        if busy:
            return SealReport(sealed=sealed, tree_size=-1, busy=True)
        checkpoint, size = await self.sign_if_due(force=force_checkpoint)
        witnessed = await self.feed_witness() if self._witness else 0
        return SealReport(sealed=sealed, tree_size=size, checkpoint=checkpoint, witnessed=witnessed)

    async def seal_pending(self) -> tuple[int, bool]:
        """Integrate committed entries batch by batch; (how many, whether the lock was busy)."""
        total = 0
        while True:
            async with self._db.transaction() as conn:
                if not await repository.try_lock_sealer(conn):
                    return total, True
                n = await _seal_batch(conn, limit=self._batch)
            total += n
            if n < self._batch:
                return total, False

    async def sign_if_due(self, *, force: bool = False) -> tuple[Checkpoint | None, int]:
        """Sign and keep a checkpoint of the sealed tree when due; (it or None, tree size)."""
        now = self._clock()
        async with self._db.transaction() as conn:
            if not await repository.try_lock_sealer(conn):
                return None, -1
            tree = await repository.read_tree(conn)
            last = await repository.latest_checkpoint(conn)
            due = checkpoint_due(
                None if last is None else last.signed_at, now=now, every_seconds=self._every
            )
            if not (force or due):
                return None, tree.size
            root = CompactRange(tree.size, tree.frontier).root()
            checkpoint = self._signer.sign(size=tree.size, root=root, at=now)
            await repository.insert_checkpoint(conn, checkpoint)
        return checkpoint, tree.size

    async def feed_witness(self) -> int:
        """Push unwitnessed checkpoints (oldest first); a failure is logged and retried on the
        next run. Returns how many reached the witness."""
        async with self._db.transaction() as conn:
            if not await repository.try_lock_sealer(conn):
                return 0
            waiting = await repository.unwitnessed(conn, limit=WITNESS_BATCH)
            if not waiting:
                return 0
            taken: list[int] = []
            try:
                if is_url_witness(self._witness):
                    await _offer_each(conn, self._witness, waiting, taken)
                else:
                    await append_to_witness_file(Path(self._witness), [c for _, c in waiting])
                    taken = [i for i, _ in waiting]
            except (OSError, httpx.HTTPError) as exc:
                log.warning("audit witness unreachable", error=repr(exc)[:200])
            except (WitnessRefusedError, ConflictError) as exc:
                # Not a network blip: the witness will not take this checkpoint (the log does
                # not extend what it holds, or the key is not the one it knows), or the proof
                # needs pruned entries. AuditWitnessBehind follows; the runbook says what next.
                log.error(
                    "audit witness refused a checkpoint",
                    alert="AuditWitnessRefused",
                    error=str(exc)[:300],
                )
                default_metrics().witness_refusals.inc()
            await repository.mark_witnessed(conn, taken, at=self._clock())
        return len(taken)


async def _offer_each(
    conn: asyncpg.Connection, url: str, waiting: list[tuple[int, Checkpoint]], taken: list[int]
) -> None:
    """Offer each checkpoint to a verifying witness with a consistency proof from the size it
    holds (first guessed: the checkpoint before, which it has when it has every earlier one;
    a 409 says the real one). Appends the ids it accepted to `taken` as it goes."""
    held = await repository.size_before(conn, waiting[0][0])
    async with httpx.AsyncClient(timeout=WITNESS_TIMEOUT_SECONDS) as client:
        for checkpoint_id, checkpoint in waiting:
            for _ in range(2):  # once as guessed, once more from the size the witness names
                if held > checkpoint.tree_size:
                    raise WitnessRefusedError(
                        f"the witness holds {held} entries, more than the {checkpoint.tree_size} "
                        "of the checkpoint waiting for it"
                    )
                path = await subtree_hashes(conn, consistency_ranges(held, checkpoint.tree_size))
                request = WitnessRequest(
                    old_size=held, consistency=[h.hex() for h in path], checkpoint=checkpoint
                )
                stale = await offer(client, url, request)
                if stale is None:
                    break
                held = stale
            else:
                raise WitnessRefusedError(f"the witness's size changed again ({held})")
            taken.append(checkpoint_id)
            held = checkpoint.tree_size


async def _seal_batch(conn: asyncpg.Connection, *, limit: int) -> int:
    """Seal up to `limit` pending entries in this (locked) transaction; returns how many."""
    rows = await repository.unsealed(conn, limit=limit)
    if not rows:
        return 0
    tree = await repository.read_tree(conn)
    edge = CompactRange(tree.size, tree.frontier)
    nodes: list[tuple[int, int, bytes]] = []

    def keep(height: int, index: int, value: bytes) -> None:
        if is_stored_height(height):
            nodes.append((height, index, value))

    seqs, indexes, hashes = [], [], []
    for row in rows:
        leaf = entry_leaf(repository.stored_entry(row))
        seqs.append(row["seq"])
        indexes.append(edge.size)
        hashes.append(leaf)
        edge.append(leaf, keep)
    await repository.write_sealed(conn, seqs=seqs, indexes=indexes, hashes=hashes)
    await repository.write_nodes(conn, nodes)
    await repository.write_tree(conn, size=edge.size, frontier=edge.hashes)
    return len(rows)
