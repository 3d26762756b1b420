"""SQL for the audit log; the only module that queries `audit_log`."""

from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg
import msgspec

from hub.audit.schemas import AuditEntry, StoredEntry


async def append(conn: asyncpg.Connection, entry: AuditEntry, *, at: datetime, body: bytes) -> int:
    """Chain and insert one entry server-side (see migrations/sql/0003_audit_append.sql)."""
    seq: int = await conn.fetchval(
        "SELECT audit_append($1, $2, $3, $4, $5::jsonb, $6, $7, $8)",
        at,
        entry.actor,
        entry.action,
        entry.target,
        msgspec.json.encode(entry.detail).decode(),
        entry.decision_id,
        entry.trace_id,
        body,
    )
    return seq


async def iter_entries(
    conn: asyncpg.Connection, *, batch: int = 1000
) -> AsyncIterator[StoredEntry]:
    """Every entry in seq order, read in bounded batches (keyset on seq)."""
    after = 0
    while True:
        rows = await conn.fetch(
            """SELECT seq, at, actor, action, target, detail::text AS detail, decision_id,
                      trace_id, prev_hash, hash
               FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2""",
            after,
            batch,
        )
        for row in rows:
            yield _stored(row)
        if len(rows) < batch:
            return
        after = rows[-1]["seq"]


def _stored(row: asyncpg.Record) -> StoredEntry:
    return StoredEntry(
        seq=row["seq"],
        at=row["at"],
        actor=row["actor"],
        action=row["action"],
        target=row["target"],
        detail=msgspec.json.decode(row["detail"]),
        decision_id=row["decision_id"],
        trace_id=row["trace_id"],
        prev_hash=bytes(row["prev_hash"]),
        hash=bytes(row["hash"]),
    )
