"""Browsing the decision log: filter by time, recipient, entrypoint, outcome and revision,
newest first, one summary line per decision (the input and result are read one at a time
through `find_decision`, so a page never carries the masked inputs of a hundred decisions).
"""

from datetime import datetime
from typing import Any, Literal

import asyncpg
import msgspec

from hub.kit.db import Database

Outcome = Literal["allow", "deny", "error", "other"]

# Whom a decision was about, whatever the entrypoint: the release recipient, the authz
# subject, the ingesting node or the retention agency.
RECIPIENT_SQL = """COALESCE(input -> 'recipient' ->> 'id', input -> 'subject' ->> 'id',
                         input -> 'node' ->> 'id', input ->> 'agency')"""
OUTCOME_SQL = """CASE WHEN error IS NOT NULL THEN 'error'
                   WHEN jsonb_typeof(result -> 'allow') IS DISTINCT FROM 'boolean' THEN 'other'
                   WHEN (result ->> 'allow')::boolean THEN 'allow' ELSE 'deny' END"""


class DecisionQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Filters of the decision list; every one optional, `until` exclusive."""

    since: datetime | None = None
    until: datetime | None = None
    recipient: str | None = None
    entrypoint: str | None = None
    outcome: Outcome | None = None
    revision: str | None = None


class DecisionSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One logged decision in a list: who it was about and what it said."""

    decision_id: str
    at: datetime
    entrypoint: str
    revision: str
    recipient: str | None
    outcome: Outcome
    reason: str | None
    latency_us: int


class DecisionPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of decisions, newest first; pass `next_until` as `until` for the next one."""

    decisions: list[DecisionSummary]
    next_until: datetime | None


async def search_decisions(db: Database, query: DecisionQuery, *, limit: int) -> DecisionPage:
    """Decisions matching every given filter, newest first, at most `limit`."""
    # On a replica within the lag bound (ADR 0016): the log is written in batches every
    # 200 ms anyway, so a browser already sees it late, and nothing is written from a page.
    async with db.reader() as conn:
        rows = await _fetch(conn, query, limit=limit)
    found = [msgspec.convert(dict(r), DecisionSummary) for r in rows[:limit]]
    more = len(rows) > limit and found
    return DecisionPage(decisions=found, next_until=found[-1].at if more else None)


async def _fetch(conn: asyncpg.Connection, query: DecisionQuery, *, limit: int) -> list[Any]:
    """The matching rows, one more than `limit` to tell whether another page follows."""
    rows: list[Any] = await conn.fetch(
        f"""SELECT decision_id, at, entrypoint, revision, latency_us,
                   {RECIPIENT_SQL} AS recipient, {OUTCOME_SQL} AS outcome,
                   result ->> 'reason' AS reason
            FROM policy_decisions
            WHERE ($1::timestamptz IS NULL OR at >= $1) AND ($2::timestamptz IS NULL OR at < $2)
              AND ($3::text IS NULL OR {RECIPIENT_SQL} = $3)
              AND ($4::text IS NULL OR entrypoint = $4)
              AND ($5::text IS NULL OR {OUTCOME_SQL} = $5)
              AND ($6::text IS NULL OR revision = $6)
            ORDER BY at DESC, decision_id DESC LIMIT $7""",  # noqa: S608 (fixed SQL fragments)
        query.since,
        query.until,
        query.recipient,
        query.entrypoint,
        query.outcome,
        query.revision,
        limit + 1,
    )
    return rows
