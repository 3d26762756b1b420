"""Use cases of the audit trail: append inside a caller's transaction, verify the chain."""

import asyncpg

from hub.audit import repository
from hub.audit.rules import GENESIS, check_link, entry_body
from hub.audit.schemas import AuditEntry, ChainReport
from hub.kit.clock import Clock, utcnow


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
