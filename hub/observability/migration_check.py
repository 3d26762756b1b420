"""`hub migrate --check`: pending migrations read (never run) and judged by lock_rules against
the live table sizes (pg_class estimates, summed over partitions)."""

import re
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from hub.observability.lock_rules import LockFinding, find_long_locks

_ID = re.compile(r'^ID\s*=\s*"([^"]+)"', re.M)
_SQL_FILE = re.compile(r'sql_file\s*=\s*"([^"]+)"')

# Estimated rows per table; a never-analysed table (reltuples = -1) is estimated from its
# size at ~100 bytes a row so it is not mistaken for an empty one.
_TABLE_ROWS = """
SELECT c.relname AS name,
       CASE WHEN c.relkind = 'p' THEN (
           SELECT coalesce(sum(CASE WHEN ch.reltuples < 0
                                    THEN pg_relation_size(ch.oid) / 100
                                    ELSE ch.reltuples END), 0)
             FROM pg_inherits i JOIN pg_class ch ON ch.oid = i.inhrelid
            WHERE i.inhparent = c.oid)
       WHEN c.reltuples < 0 THEN pg_relation_size(c.oid) / 100
       ELSE c.reltuples END::bigint AS rows
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
"""


@dataclass(frozen=True, slots=True)
class Pending:
    """A migration not applied yet and the SQL it would run (None: not a SQL migration)."""

    id: str
    module: str
    sql: str | None


@dataclass(slots=True)
class CheckReport:
    """What `--check` found: pending migrations, risky statements, unchecked migrations."""

    pending: list[str] = field(default_factory=list)
    findings: list[LockFinding] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Safe to apply online."""
        return not self.findings


def pending_migrations(versions_dir: Path, sql_dir: Path, applied: set[str]) -> list[Pending]:
    """Migration modules whose ID is not applied, in ID order, with their SQL file's text."""
    found = []
    for path in sorted(versions_dir.glob("m*.py")):
        source = path.read_text(encoding="utf-8")
        match = _ID.search(source)
        if match is None or match.group(1) in applied:
            continue
        sql_file = _SQL_FILE.search(source)
        sql = (sql_dir / sql_file.group(1)).read_text(encoding="utf-8") if sql_file else None
        found.append(Pending(id=match.group(1), module=path.stem, sql=sql))
    return sorted(found, key=lambda p: p.id)


async def check_pending(
    conn: asyncpg.Connection, *, versions_dir: Path, sql_dir: Path, big_rows: int
) -> CheckReport:
    """Judge every pending migration against the tables as they are now."""
    exists = await conn.fetchval("SELECT to_regclass('migration') IS NOT NULL")
    applied: set[str] = set()
    if exists:
        rows = await conn.fetch("SELECT name FROM migration WHERE app_name = 'hub'")
        applied = {r["name"] for r in rows}
    sizes = {r["name"]: int(r["rows"]) for r in await conn.fetch(_TABLE_ROWS)}
    report = CheckReport()
    for item in pending_migrations(versions_dir, sql_dir, applied):
        report.pending.append(item.module)
        if item.sql is None:
            report.unchecked.append(item.module)
            continue
        report.findings += find_long_locks(
            item.module, item.sql, table_rows=sizes, big_rows=big_rows
        )
    return report
