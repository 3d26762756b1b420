"""SQL for the audit log; the only module that queries `audit_log`."""

from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg
import msgspec

from hub.audit.schemas import AuditEntry, StoredEntry

# Arbitrary constant naming the audit chain's advisory lock.
CHAIN_LOCK_KEY = 0x6875625F61756469  # "hub_audi"


async def lock_chain(conn: asyncpg.Connection) -> None:
    """Serialise appenders until the end of the transaction (keeps `seq` gap-free)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", CHAIN_LOCK_KEY)


async def chain_head(conn: asyncpg.Connection) -> tuple[int, bytes] | None:
    """The last entry's seq and hash, or None for an empty log."""
    row = await conn.fetchrow("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
    return None if row is None else (row["seq"], bytes(row["hash"]))


async def insert_entry(
    conn: asyncpg.Connection,
    entry: AuditEntry,
    *,
    seq: int,
    at: datetime,
    prev_hash: bytes,
    entry_hash: bytes,
) -> None:
    """Insert one chained entry."""
    await conn.execute(
        """INSERT INTO audit_log
           (seq, at, actor, action, target, detail, decision_id, trace_id, prev_hash, hash)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10)""",
        seq,
        at,
        entry.actor,
        entry.action,
        entry.target,
        msgspec.json.encode(entry.detail).decode(),
        entry.decision_id,
        entry.trace_id,
        prev_hash,
        entry_hash,
    )


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
