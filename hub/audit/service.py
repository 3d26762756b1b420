"""Use cases of the audit trail: append inside a caller's transaction, search, export, prune.

Sealing, checkpoints and proofs live in `sealer`, `verify` and `proofs`."""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Literal

import asyncpg
import msgspec
import structlog

from hub.audit import repository
from hub.audit.checkpoints import is_url_witness
from hub.audit.export import ExportSigner, entry_read, render
from hub.audit.rules import prune_point
from hub.audit.schemas import (
    AuditEntry,
    AuditEntryRead,
    AuditExport,
    AuditPage,
    AuditQuery,
    Checkpoint,
    ExportRequest,
    PruneReport,
    WitnessStatus,
)
from hub.kit.clock import Clock, utcnow
from hub.kit.db import Database
from hub.kit.errors import NotFoundError

log = structlog.get_logger(__name__)


async def append_entry(
    conn: asyncpg.Connection, entry: AuditEntry, *, clock: Clock = utcnow
) -> int:
    """Insert `entry` in the caller's open transaction; returns its seq.

    A plain INSERT: appends never wait on each other. The sealer gives the entry its place in
    the Merkle tree after the transaction commits (ADR 0011).
    """
    return await repository.append(conn, entry, at=clock())


@dataclass(frozen=True, slots=True)
class AuditAppend:
    """An entry for a neighbour's statement (ADR 0030): `sql(first=)` is the body of a CTE
    that inserts it, reading `params` as parameters `first`.. . The neighbour's statement
    then is the append: the entry commits or rolls back with the caller's transaction, as
    `append_entry`'s does, without a statement and a round trip of its own."""

    params: tuple[object, ...]

    @staticmethod
    def sql(*, first: int) -> str:
        """The CTE body (its text depends on `first` only: it is a prepared statement)."""
        return repository.append_sql(first=first)


def audit_append(entry: AuditEntry, *, clock: Clock = utcnow) -> AuditAppend:
    """`entry`, dated now, as a fragment for a neighbour's statement."""
    return AuditAppend(params=repository.append_params(entry, at=clock()))


async def append_entries(
    conn: asyncpg.Connection, entries: Sequence[AuditEntry], *, clock: Clock = utcnow
) -> list[int]:
    """Insert several entries in the caller's open transaction with one statement; their seqs.

    For callers that audit many things at once (a live fan-out, a batch of actions): one
    INSERT costs about a third of the database and client CPU per entry of one INSERT each.
    Like `append_entry`, it takes no lock and waits on no other append.
    """
    if not entries:
        return []
    return await repository.append_many(conn, entries, at=clock())


async def prune_entries(
    db: Database,
    *,
    before: datetime,
    actor: str,
    batch: int = 10_000,
    clock: Clock = utcnow,
    witness: str = "",
) -> PruneReport:
    """Delete entries older than `before` that a signed checkpoint covers, oldest first in
    tree order, stopping at the first younger entry and on a multiple of 256; the stored
    subtree hashes stay, so what remains still verifies against every later checkpoint.

    With a verifying `witness` (a URL, HUB_AUDIT_WITNESS) that lacks checkpoints, pruning also
    stops below the tile of the size it holds, so the sealer can still prove to it that the
    log only grew: pruned past it, the witness could never be given a checkpoint again."""
    async with db.transaction() as conn:
        plan = await prune_plan(conn, before=before, witness=witness)
        if plan.witness_holds is not None:
            log.warning(
                "audit pruning held for the witness",
                alert="AuditWitnessBehind",
                witness_holds=plan.witness_holds,
                pruned_below=plan.pruned_below,
            )
        if not plan.deleted:
            return plan
        point, was = plan.pruned_below, plan.pruned_below - plan.deleted
        # The prune point moves first, so a verifier never expects what is being deleted.
        await repository.set_pruned_below(conn, point)
        await append_entry(
            conn,
            AuditEntry(
                actor=actor,
                action="audit.prune",
                target=f"audit:below:{point}",
                detail={"pruned_below": point, "was": was},
            ),
            clock=clock,
        )
    holds = plan.witness_holds
    deleted = 0
    while True:
        async with db.transaction() as conn:
            n = await repository.delete_below(conn, point, limit=batch)
        deleted += n
        if n < batch:
            return PruneReport(pruned_below=point, deleted=deleted, witness_holds=holds)


async def prune_plan(conn: asyncpg.Connection, *, before: datetime, witness: str) -> PruneReport:
    """What `prune_entries` would do now, in the caller's transaction, writing nothing: where
    it would stop and how many entries it would delete (the retention sweep's dry run)."""
    tree = await repository.read_tree(conn)
    latest = await repository.latest_checkpoint(conn)
    young = await repository.first_leaf_at_or_after(conn, start=tree.pruned_below, cutoff=before)
    holds = await _witness_holds(conn, witness)
    limit = partial(
        prune_point,
        checkpoint_size=0 if latest is None else latest.tree_size,
        first_young=young,
        sealed=tree.size,
    )
    point = limit(witness_holds=holds)
    # Entries below the point are in tree order and all older than `before` (`first_young`).
    return PruneReport(
        pruned_below=max(point, tree.pruned_below),
        deleted=max(0, point - tree.pruned_below),
        # Named only when it held pruning back, which the report and the log then say.
        witness_holds=holds if point < limit() else None,
    )


async def _witness_holds(conn: asyncpg.Connection, witness: str) -> int | None:
    """The size a verifying witness holds while it lacks checkpoints: that of the checkpoint
    before the oldest it lacks (None: a file, no witness, or none lacking)."""
    if not is_url_witness(witness):
        return None
    waiting = await repository.unwitnessed(conn, limit=1)
    if not waiting:
        return None
    return await repository.size_before(conn, waiting[0][0])


async def checkpoint_owed_since(pool: asyncpg.Pool) -> datetime | None:
    """Since when a checkpoint is owed: the newest one's signing time or, while none was ever
    signed, the oldest entry's time; None for an empty log (nothing to cover)."""
    signed = await repository.newest_checkpoint_at(pool)
    return signed if signed is not None else await repository.oldest_entry_at(pool)


# The unwitnessed checkpoints are counted up to this many: enough to see a backlog grow, and
# a bounded look at the partial index however long the witness has been away.
UNWITNESSED_COUNTED_UP_TO = 10_000


async def witness_status(pool: asyncpg.Pool, *, witness: str) -> WitnessStatus:
    """The outside witness's kind and what it has not taken yet: since when it is owed a
    checkpoint (the oldest it lacks; None: it has them all) and how many (up to
    `UNWITNESSED_COUNTED_UP_TO`). Without a witness nothing is owed, and the database is not
    asked (every checkpoint is unwitnessed then)."""
    if not witness:
        return WitnessStatus(kind="none", unwitnessed=0, owed_since=None)
    owed_since, owed = await repository.oldest_unwitnessed(
        pool, count_up_to=UNWITNESSED_COUNTED_UP_TO
    )
    kind: Literal["file", "url"] = "url" if is_url_witness(witness) else "file"
    return WitnessStatus(kind=kind, unwitnessed=owed, owed_since=owed_since)


async def checkpoints(pool: asyncpg.Pool, *, limit: int) -> list[Checkpoint]:
    """The newest signed checkpoints, newest first."""
    return await repository.list_checkpoints(pool, limit=limit)


async def search(
    conn: asyncpg.Connection | asyncpg.Pool, query: AuditQuery, *, limit: int
) -> AuditPage:
    """One page of entries matching `query`, newest first, with the next page's cursor (on a
    replica connection from `Database.reader()` it may lag by the replica bound)."""
    found = await repository.search_entries(conn, query, limit=limit + 1)
    page = [entry_read(e) for e in found[:limit]]
    more = len(found) > limit
    return AuditPage(entries=page, next_before_seq=page[-1].seq if more and page else None)


async def read_entry(pool: asyncpg.Pool, seq: int) -> AuditEntryRead:
    """One entry by seq; `NotFoundError` when there is none."""
    async with pool.acquire() as conn:
        found = await repository.find_entry(conn, seq)
    if found is None:
        raise NotFoundError(f"no audit entry {seq}")
    return entry_read(found)


async def export_entries(
    pool: asyncpg.Pool,
    request: ExportRequest,
    *,
    signer: ExportSigner,
    actor: str,
    decision_id: str | None,
    clock: Clock = utcnow,
) -> AuditExport:
    """Export the matching entries with a signed manifest; the export itself is audited
    (in the same transaction that read the entries, so the extract is consistent)."""
    now = clock()
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        found = await repository.search_entries(conn, request.query, limit=request.limit)
        entries = [entry_read(e) for e in found]
        content = render(entries, fmt=request.format)
        filename = f"audit-{now.strftime('%Y%m%dT%H%M%SZ')}.{request.format}"
        signed = signer.sign({filename: content}, kind="audit_export", at=now)
        await append_entry(
            conn,
            AuditEntry(
                actor=actor,
                action="audit.export",
                target=f"audit:{filename}",
                detail={
                    "count": len(entries),
                    "format": request.format,
                    "filters": msgspec.json.encode(request.query).decode(),
                    "manifest_sha256": hashlib.sha256(signed.manifest.encode()).hexdigest(),
                },
                decision_id=decision_id,
            ),
            clock=clock,
        )
    return AuditExport(
        filename=filename, content=content.decode(), count=len(entries), signed=signed
    )
