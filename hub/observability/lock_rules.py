"""Which SQL statements would hold a long lock on a big table (pure; `hub migrate --check`).

PostgreSQL takes ACCESS EXCLUSIVE (or SHARE for a plain CREATE INDEX) for the whole of these
statements; on a big table that is minutes of refused ingest. Each rule names the safe form:

- `CREATE INDEX` without `CONCURRENTLY`: blocks writes while the index builds.
- `ADD COLUMN` with a volatile default (random(), gen_random_uuid(), clock_timestamp(),
  nextval(), serial types) or `GENERATED ... STORED`: rewrites the table. A constant or
  stable default (e.g. now()) is fine since PostgreSQL 11.
- `ALTER COLUMN ... SET NOT NULL`: scans the table under the lock. Add
  `CHECK (col IS NOT NULL) NOT VALID`, `VALIDATE CONSTRAINT` it, then `SET NOT NULL`.
- `ADD CONSTRAINT` (CHECK, FOREIGN KEY) without `NOT VALID`: scans under the lock; add it
  `NOT VALID`, then `VALIDATE CONSTRAINT` in a later step. UNIQUE / PRIMARY KEY without
  `USING INDEX` builds an index under the lock: build it CONCURRENTLY first.
- `ALTER COLUMN ... TYPE`: usually rewrites the table and its indexes.
- `VACUUM FULL`, `CLUSTER`, `REINDEX` without CONCURRENTLY, `LOCK TABLE`: exclusive by design.

Tables below the row threshold, and tables the same migration creates, are never "big".
"""

import re
from dataclasses import dataclass

_VOLATILE = re.compile(
    r"\b(random|gen_random_uuid|uuid_generate_v[14]|clock_timestamp|timeofday|nextval)\s*\(",
    re.I,
)
_IDENT = r'(?:"[^"]+"|[\w$]+)(?:\.(?:"[^"]+"|[\w$]+))?'


@dataclass(frozen=True, slots=True)
class LockFinding:
    """One risky statement: where, which table and how big, which rule and the safe form."""

    migration: str
    table: str
    rows: int
    rule: str
    statement: str
    advice: str


def split_statements(sql: str) -> list[str]:
    """Statements of a SQL script without comments (quotes and $$ bodies kept whole)."""
    out: list[str] = []
    current: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if sql.startswith("--", i):
            i = sql.find("\n", i) if sql.find("\n", i) != -1 else n
            continue
        if sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end == -1 else end + 2
            continue
        if ch == "'" or ch == '"':
            end = sql.find(ch, i + 1)
            end = n if end == -1 else end + 1
            current.append(sql[i:end])
            i = end
            continue
        tag = re.match(r"\$[A-Za-z_]*\$", sql[i:])
        if tag:
            end = sql.find(tag.group(0), i + len(tag.group(0)))
            end = n if end == -1 else end + len(tag.group(0))
            current.append(sql[i:end])
            i = end
            continue
        if ch == ";":
            out.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    out.append("".join(current))
    return [" ".join(s.split()) for s in out if s.strip()]


def _name(raw: str) -> str:
    """Unqualified, unquoted, lower-case table name."""
    return raw.split(".")[-1].strip('"').lower()


def created_tables(statements: list[str]) -> set[str]:
    """Tables the script itself creates (empty while it runs)."""
    found = set()
    for stmt in statements:
        m = re.match(
            rf"CREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?({_IDENT})", stmt, re.I
        )
        if m:
            found.add(_name(m.group(1)))
    return found


def statement_risks(stmt: str) -> list[tuple[str, str, str]]:
    """(table, rule, advice) for every long-lock pattern in one statement, size ignored."""
    risks: list[tuple[str, str, str]] = []
    index = re.match(
        rf"CREATE\s+(?:UNIQUE\s+)?INDEX\s+(CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?(?:{_IDENT}\s+)?ON\s+(?:ONLY\s+)?({_IDENT})",
        stmt,
        re.I,
    )
    if index and not index.group(1):
        risks.append(
            (
                _name(index.group(2)),
                "create_index_without_concurrently",
                "CREATE INDEX CONCURRENTLY in its own migration, outside a transaction "
                "(partitioned: ON ONLY the parent, CONCURRENTLY per partition, then ATTACH)",
            )
        )
    alter = re.match(
        rf"ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?({_IDENT})\s+(.*)", stmt, re.I | re.S
    )
    if alter:
        table, actions = _name(alter.group(1)), alter.group(2)
        risks += [(table, rule, advice) for rule, advice in _alter_risks(actions)]
    other = re.match(
        rf"(VACUUM\s+FULL|CLUSTER|REINDEX\s+(?:TABLE|INDEX)|LOCK\s+TABLE)\s+(?!CONCURRENTLY)({_IDENT})",
        stmt,
        re.I,
    )
    if other:
        risks.append(
            (
                _name(other.group(2)),
                "exclusive_maintenance",
                "run it by hand in a maintenance window, or REINDEX CONCURRENTLY / pg_repack",
            )
        )
    return risks


_ADVICE = {
    "add_column_volatile_default": "add the column without a default (or a constant one), "
    "then backfill in batches",
    "add_column_not_null_without_default": "add it nullable, backfill, then enforce NOT NULL "
    "through a NOT VALID check",
    "set_not_null": "ADD CONSTRAINT ... CHECK (col IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT; "
    "then SET NOT NULL",
    "alter_column_type": "add a new column, backfill in batches, switch readers, drop the old",
    "add_constraint_without_not_valid": "ADD CONSTRAINT ... NOT VALID, then VALIDATE "
    "CONSTRAINT in a later step",
    "add_unique_without_index": "CREATE UNIQUE INDEX CONCURRENTLY first, then ADD "
    "CONSTRAINT ... USING INDEX",
}
_REWRITING_TYPE = re.compile(r"\b(BIG|SMALL)?SERIAL\b|GENERATED\s+ALWAYS\s+AS\s*\(.*\)\s*STORED")
_CONSTRAINT = r"ADD\s+(CONSTRAINT\s+\S+\s+)?"


def _action_rule(action: str) -> str | None:
    """The rule one ALTER TABLE action breaks, if any."""
    upper = action.upper()
    if re.match(rf"{_CONSTRAINT}(CHECK|FOREIGN\s+KEY)", upper):
        return None if "NOT VALID" in upper else "add_constraint_without_not_valid"
    if re.match(rf"{_CONSTRAINT}(UNIQUE|PRIMARY\s+KEY)", upper):
        return None if "USING INDEX" in upper else "add_unique_without_index"
    if upper.startswith("ADD"):
        if _VOLATILE.search(action) or _REWRITING_TYPE.search(upper):
            return "add_column_volatile_default"
        if "NOT NULL" in upper and "DEFAULT" not in upper:
            return "add_column_not_null_without_default"
        return None
    if re.search(r"ALTER\s+(COLUMN\s+)?\S+\s+SET\s+NOT\s+NULL", upper):
        return "set_not_null"
    if re.search(r"ALTER\s+(COLUMN\s+)?\S+\s+(SET\s+DATA\s+)?TYPE\b", upper):
        return "alter_column_type"
    return None


def _alter_risks(actions: str) -> list[tuple[str, str]]:
    rules = [_action_rule(action) for action in _split_actions(actions)]
    return [(rule, _ADVICE[rule]) for rule in rules if rule is not None]


def _split_actions(actions: str) -> list[str]:
    """ALTER TABLE actions separated by top-level commas."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in actions:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def find_long_locks(
    migration: str, sql: str, *, table_rows: dict[str, int], big_rows: int
) -> list[LockFinding]:
    """Risky statements of one migration on tables with at least `big_rows` rows."""
    statements = split_statements(sql)
    fresh = created_tables(statements)
    findings = []
    for stmt in statements:
        for table, rule, advice in statement_risks(stmt):
            rows = table_rows.get(table, 0)
            if table in fresh or rows < big_rows:
                continue
            findings.append(
                LockFinding(
                    migration=migration,
                    table=table,
                    rows=rows,
                    rule=rule,
                    statement=stmt[:200],
                    advice=advice,
                )
            )
    return findings
