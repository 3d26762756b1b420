"""Use cases of the audit trail: append inside a caller's transaction, verify the chain."""

import hashlib

import asyncpg
import msgspec

from hub.audit import repository
from hub.audit.export import ExportSigner, entry_read, render
from hub.audit.rules import GENESIS, check_link, entry_body
from hub.audit.schemas import (
    AuditEntry,
    AuditEntryRead,
    AuditExport,
    AuditPage,
    AuditQuery,
    ChainReport,
    ExportRequest,
)
from hub.kit.clock import Clock, utcnow
from hub.kit.errors import NotFoundError


async def append_entry(
    conn: asyncpg.Connection, entry: AuditEntry, *, clock: Clock = utcnow
) -> int:
    """Chain and insert `entry` in the caller's open transaction; returns its seq.

    One server-side call (`audit_append`) locks the chain, reads its head and inserts. Call
    it as the transaction's last statement: the lock is held until commit.
    """
    at = clock()
    body = entry_body(
        at=at,
        actor=entry.actor,
        action=entry.action,
        target=entry.target,
        detail=entry.detail,
        decision_id=entry.decision_id,
        trace_id=entry.trace_id,
    )
    return await repository.append(conn, entry, at=at, body=body)


async def verify_chain(pool: asyncpg.Pool) -> ChainReport:
    """Walk the whole chain in order; report the first broken link, if any.

    Deleting the newest entries cannot be seen from the chain alone; periodic signed
    checkpoints (a later issue) close that gap.
    """
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        count, prev_hash, expected = 0, GENESIS, 1
        async for entry in repository.iter_entries(conn):
            problem = check_link(entry, expected_seq=expected, prev_hash=prev_hash)
            if problem is not None:
                return ChainReport(
                    ok=False,
                    entries=count,
                    last_seq=expected - 1,
                    broken_at=expected,
                    problem=problem,
                )
            count, prev_hash, expected = count + 1, entry.hash, entry.seq + 1
    return ChainReport(ok=True, entries=count, last_seq=expected - 1)


async def search(pool: asyncpg.Pool, query: AuditQuery, *, limit: int) -> AuditPage:
    """One page of entries matching `query`, newest first, with the next page's cursor."""
    async with pool.acquire() as conn:
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
