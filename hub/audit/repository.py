"""SQL for the audit log; the only module that queries `audit_log`."""

from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg
import msgspec

from hub.audit.schemas import AuditEntry, AuditQuery, StoredEntry


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


_SEARCH_COLUMNS = """seq, at, actor, action, target, detail::text AS detail, decision_id,
                     trace_id, prev_hash, hash"""


async def search_entries(
    conn: asyncpg.Connection | asyncpg.Pool, query: AuditQuery, *, limit: int
) -> list[StoredEntry]:
    """Entries matching the query, newest first, keyset-paged on seq (`before_seq`).

    Actor and action match a prefix, target a substring; each filter is a bound parameter.
    """
    rows = await conn.fetch(
        f"""SELECT {_SEARCH_COLUMNS} FROM audit_log
            WHERE ($1::text IS NULL OR actor LIKE $1 || '%')
              AND ($2::text IS NULL OR action LIKE $2 || '%')
              AND ($3::text IS NULL OR strpos(target, $3) > 0)
              AND ($4::timestamptz IS NULL OR at >= $4)
              AND ($5::timestamptz IS NULL OR at < $5)
              AND ($6::bigint IS NULL OR seq < $6)
            ORDER BY seq DESC LIMIT $7""",
        _like(query.actor),
        _like(query.action),
        query.target,
        query.since,
        query.until,
        query.before_seq,
        limit,
    )
    return [_stored(row) for row in rows]


async def find_entry(conn: asyncpg.Connection | asyncpg.Pool, seq: int) -> StoredEntry | None:
    """One entry by seq."""
    row = await conn.fetchrow(f"SELECT {_SEARCH_COLUMNS} FROM audit_log WHERE seq = $1", seq)
    return None if row is None else _stored(row)


def _like(value: str | None) -> str | None:
    """A LIKE prefix with its wildcards escaped (a filter is text, not a pattern)."""
    if value is None:
        return None
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
