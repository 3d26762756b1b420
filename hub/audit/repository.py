"""SQL of the audit log; the only module that queries `audit_*` tables."""

import asyncio
from collections.abc import AsyncGenerator, Iterable, Sequence
from datetime import datetime

import asyncpg
import msgspec

from hub.audit.schemas import AuditEntry, AuditQuery, Checkpoint, StoredEntry

# One sealer at a time: leaf positions are handed out in the order sealer transactions run.
SEALER_LOCK = 7527030514016150634  # "hub_audi" + 1; 0003's append lock is gone with it

_COLUMNS = """seq, at, actor, action, target, detail::text AS detail, decision_id, trace_id,
              leaf_index, leaf_hash"""
_CHECKPOINT_COLUMNS = "tree_size, root_hash, signed_at, key_id, signature, note"


class TreeState(msgspec.Struct, frozen=True, kw_only=True):
    """The sealed tree's size, the roots covering it (largest first) and the prune point."""

    size: int = 0
    frontier: list[bytes] = []
    pruned_below: int = 0


def append_sql(*, first: int) -> str:
    """One unsealed entry's INSERT reading `append_params` as parameters `first`.. (no lock:
    seq comes from a sequence); `RETURNING seq` is the caller's to add."""
    n = range(first, first + 7)
    return f"""INSERT INTO audit_log (at, actor, action, target, detail, decision_id, trace_id)
           VALUES (${n[0]}::timestamptz, ${n[1]}::text, ${n[2]}::text, ${n[3]}::text,
                   ${n[4]}::jsonb, ${n[5]}::text, ${n[6]}::text)"""


_APPEND = append_sql(first=1) + " RETURNING seq"


def append_params(entry: AuditEntry, *, at: datetime) -> tuple[object, ...]:
    """The parameters of `append_sql`, in its order."""
    detail = msgspec.json.encode(entry.detail).decode()
    return (at, entry.actor, entry.action, entry.target, detail, entry.decision_id, entry.trace_id)


async def append(conn: asyncpg.Connection, entry: AuditEntry, *, at: datetime) -> int:
    """Insert one unsealed entry; returns its seq."""
    seq: int = await conn.fetchval(_APPEND, *append_params(entry, at=at))
    return seq


async def append_many(
    conn: asyncpg.Connection, entries: Sequence[AuditEntry], *, at: datetime
) -> list[int]:
    """Insert unsealed entries with one statement (one round trip, one plan, one parse of the
    whole batch), all dated `at`; returns their seqs in the order given."""
    return await append_stamped(conn, entries, ats=[at] * len(entries))


async def append_stamped(
    conn: asyncpg.Connection, entries: Sequence[AuditEntry], *, ats: Sequence[datetime]
) -> list[int]:
    """Insert unsealed entries with one statement, each dated by its own time in `ats` (the
    appender's callers each appended at their own moment); their seqs in the order given."""
    rows = await conn.fetch(
        """INSERT INTO audit_log (at, actor, action, target, detail, decision_id, trace_id)
           SELECT u.at, u.actor, u.action, u.target, u.detail, u.decision_id, u.trace_id
           FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::jsonb[],
                       $6::text[], $7::text[])
                WITH ORDINALITY AS u(at, actor, action, target, detail, decision_id, trace_id, n)
           ORDER BY u.n RETURNING seq""",
        ats,
        [e.actor for e in entries],
        [e.action for e in entries],
        [e.target for e in entries],
        [msgspec.json.encode(e.detail).decode() for e in entries],
        [e.decision_id for e in entries],
        [e.trace_id for e in entries],
    )
    return [r[0] for r in rows]


async def try_lock_sealer(conn: asyncpg.Connection) -> bool:
    """Take the sealer lock for this transaction, or False when another sealer holds it."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", SEALER_LOCK))


async def read_tree(conn: asyncpg.Connection | asyncpg.Pool) -> TreeState:
    """The sealed tree's state (empty before the first seal)."""
    row = await conn.fetchrow("SELECT size, frontier, pruned_below FROM audit_tree")
    if row is None:
        return TreeState()
    return TreeState(
        size=row["size"],
        frontier=[bytes(h) for h in row["frontier"]],
        pruned_below=row["pruned_below"],
    )


async def write_tree(conn: asyncpg.Connection, *, size: int, frontier: list[bytes]) -> None:
    """Store the tree's new size and right edge."""
    await conn.execute(
        """INSERT INTO audit_tree (size, frontier) VALUES ($1, $2)
           ON CONFLICT (singleton) DO UPDATE
           SET size = EXCLUDED.size, frontier = EXCLUDED.frontier, updated_at = now()""",
        size,
        frontier,
    )


async def unsealed(conn: asyncpg.Connection, *, limit: int) -> list[asyncpg.Record]:
    """Committed entries not yet in the tree, oldest seq first."""
    return list(
        await conn.fetch(
            f"""SELECT {_COLUMNS} FROM audit_log WHERE leaf_index IS NULL
                ORDER BY seq LIMIT $1""",
            limit,
        )
    )


async def write_sealed(
    conn: asyncpg.Connection, *, seqs: list[int], indexes: list[int], hashes: list[bytes]
) -> None:
    """Give entries their tree positions and leaf hashes."""
    await conn.execute(
        """UPDATE audit_log a SET leaf_index = u.i, leaf_hash = u.h
           FROM unnest($1::bigint[], $2::bigint[], $3::bytea[]) AS u(s, i, h)
           WHERE a.seq = u.s AND a.leaf_index IS NULL""",
        seqs,
        indexes,
        hashes,
    )


async def write_nodes(conn: asyncpg.Connection, nodes: Sequence[tuple[int, int, bytes]]) -> None:
    """Store completed subtree hashes (height, index, hash)."""
    if nodes:
        await conn.execute(
            """INSERT INTO audit_node (height, idx, hash)
               SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])""",
            [n[0] for n in nodes],
            [n[1] for n in nodes],
            [n[2] for n in nodes],
        )


async def fetch_hashes(
    conn: asyncpg.Connection | asyncpg.Pool, keys: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], bytes]:
    """Leaf hashes (height 0) and stored node hashes by (height, index); absent ones omitted."""
    wanted = sorted(set(keys))
    leaves = [i for h, i in wanted if h == 0]
    nodes = [(h, i) for h, i in wanted if h > 0]
    found: dict[tuple[int, int], bytes] = {}
    if leaves:
        rows = await conn.fetch(
            "SELECT leaf_index, leaf_hash FROM audit_log WHERE leaf_index = ANY($1::bigint[])",
            leaves,
        )
        found.update({(0, r["leaf_index"]): bytes(r["leaf_hash"]) for r in rows})
    if nodes:
        rows = await conn.fetch(
            """SELECT n.height, n.idx, n.hash FROM audit_node n
               JOIN unnest($1::smallint[], $2::bigint[]) AS k(h, i)
                 ON n.height = k.h AND n.idx = k.i""",
            [h for h, _ in nodes],
            [i for _, i in nodes],
        )
        found.update({(r["height"], r["idx"]): bytes(r["hash"]) for r in rows})
    return found


async def insert_checkpoint(conn: asyncpg.Connection, checkpoint: Checkpoint) -> None:
    """Keep a signed checkpoint."""
    await conn.execute(
        f"INSERT INTO audit_checkpoint ({_CHECKPOINT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)",
        checkpoint.tree_size,
        bytes.fromhex(checkpoint.root_hash),
        checkpoint.signed_at,
        checkpoint.key_id,
        checkpoint.signature,
        checkpoint.note,
    )


async def latest_checkpoint(conn: asyncpg.Connection | asyncpg.Pool) -> Checkpoint | None:
    """The newest checkpoint (by when it was signed), if any."""
    row = await conn.fetchrow(
        f"SELECT {_CHECKPOINT_COLUMNS} FROM audit_checkpoint ORDER BY signed_at DESC, id DESC "
        "LIMIT 1"
    )
    return None if row is None else _checkpoint(row)


async def checkpoint_of_size(
    conn: asyncpg.Connection | asyncpg.Pool, size: int
) -> Checkpoint | None:
    """The newest checkpoint of exactly this tree size."""
    row = await conn.fetchrow(
        f"""SELECT {_CHECKPOINT_COLUMNS} FROM audit_checkpoint WHERE tree_size = $1
            ORDER BY signed_at DESC, id DESC LIMIT 1""",
        size,
    )
    return None if row is None else _checkpoint(row)


async def list_checkpoints(
    conn: asyncpg.Connection | asyncpg.Pool, *, limit: int
) -> list[Checkpoint]:
    """The newest checkpoints, newest first."""
    rows = await conn.fetch(
        f"SELECT {_CHECKPOINT_COLUMNS} FROM audit_checkpoint ORDER BY signed_at DESC, id DESC "
        "LIMIT $1",
        limit,
    )
    return [_checkpoint(r) for r in rows]


async def unwitnessed(conn: asyncpg.Connection, *, limit: int) -> list[tuple[int, Checkpoint]]:
    """Checkpoints not yet pushed to the witness, oldest first, with their ids."""
    rows = await conn.fetch(
        f"""SELECT id, {_CHECKPOINT_COLUMNS} FROM audit_checkpoint WHERE witnessed_at IS NULL
            ORDER BY id LIMIT $1""",
        limit,
    )
    return [(r["id"], _checkpoint(r)) for r in rows]


async def size_before(conn: asyncpg.Connection, checkpoint_id: int) -> int:
    """The size of the checkpoint signed just before this one (0 for the first): what the
    witness holds when it has every earlier one. One step back on the primary key."""
    size = await conn.fetchval(
        "SELECT tree_size FROM audit_checkpoint WHERE id < $1 ORDER BY id DESC LIMIT 1",
        checkpoint_id,
    )
    return int(size or 0)


async def mark_witnessed(conn: asyncpg.Connection, ids: list[int], *, at: datetime) -> None:
    """Record that these checkpoints reached the witness."""
    await conn.execute(
        "UPDATE audit_checkpoint SET witnessed_at = $2 WHERE id = ANY($1::bigint[])", ids, at
    )


async def oldest_unwitnessed(
    conn: asyncpg.Connection | asyncpg.Pool, *, count_up_to: int
) -> tuple[datetime | None, int]:
    """When the oldest checkpoint not yet pushed to the witness was signed (None: none is
    owed), and how many are owed, counted up to `count_up_to`. Both read the partial index
    of unwitnessed checkpoints, which stays small while the witness keeps up."""
    row = await conn.fetchrow(
        """SELECT (SELECT signed_at FROM audit_checkpoint WHERE witnessed_at IS NULL
                   ORDER BY id LIMIT 1) AS owed_since,
                  (SELECT count(*) FROM (SELECT 1 FROM audit_checkpoint
                   WHERE witnessed_at IS NULL LIMIT $1) AS owed) AS owed""",
        count_up_to,
    )
    return row["owed_since"], int(row["owed"])


async def newest_checkpoint_at(conn: asyncpg.Connection | asyncpg.Pool) -> datetime | None:
    """When the newest checkpoint was signed, by id (the primary key: no sort of every
    checkpoint; one sealer at a time signs, so ids follow signing order)."""
    value: datetime | None = await conn.fetchval(
        "SELECT signed_at FROM audit_checkpoint ORDER BY id DESC LIMIT 1"
    )
    return value


async def oldest_entry_at(conn: asyncpg.Connection | asyncpg.Pool) -> datetime | None:
    """The time of the first remaining entry (by seq), if any."""
    value: datetime | None = await conn.fetchval("SELECT at FROM audit_log ORDER BY seq LIMIT 1")
    return value


async def count_unsealed(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    """Entries waiting for the sealer."""
    return int(await conn.fetchval("SELECT count(*) FROM audit_log WHERE leaf_index IS NULL"))


# For verification: columns by position, the time already in `rules.canonical_time`'s form
# (PostgreSQL formats it, saving the verifier a datetime per entry). Packing them into one
# JSON object in SQL was tried: it halved nothing in Python and doubled PostgreSQL's CPU.
VERIFY_COLUMNS = """leaf_index, seq,
    to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'), actor, action,
    target, detail::text, decision_id, trace_id, leaf_hash"""


async def iter_sealed(
    conn: asyncpg.Connection, *, start: int, batch: int = 20_000
) -> AsyncGenerator[list[asyncpg.Record], None]:
    """Sealed entries (`VERIFY_COLUMNS`) from position `start` on in tree order, in batches.

    The next batch is requested before this one is handed over, so PostgreSQL reads it while
    the caller hashes; close the iterator (`contextlib.aclosing`) if you stop early."""
    query = f"""SELECT {VERIFY_COLUMNS} FROM audit_log WHERE leaf_index > $1
                ORDER BY leaf_index LIMIT $2"""
    pending = asyncio.ensure_future(conn.fetch(query, start - 1, batch))
    try:
        while True:
            rows = await pending
            if len(rows) == batch:
                pending = asyncio.ensure_future(conn.fetch(query, rows[-1][0], batch))
                await asyncio.sleep(0)  # the request goes out before the caller computes
            if rows:
                yield rows
            if len(rows) < batch:
                return
    finally:
        if not pending.done():
            await pending  # the connection takes one query at a time: let it finish


async def first_leaf_at_or_after(
    conn: asyncpg.Connection, *, start: int, cutoff: datetime
) -> int | None:
    """The lowest leaf index from `start` whose entry is not older than `cutoff`."""
    value = await conn.fetchval(
        """SELECT leaf_index FROM audit_log WHERE leaf_index >= $1 AND at >= $2
           ORDER BY leaf_index LIMIT 1""",
        start,
        cutoff,
    )
    return None if value is None else int(value)


async def set_pruned_below(conn: asyncpg.Connection, point: int) -> None:
    """Move the prune point (entries below it are no longer expected to exist)."""
    await conn.execute(
        "UPDATE audit_tree SET pruned_below = $1 WHERE pruned_below < $1 AND size >= $1", point
    )


async def delete_below(conn: asyncpg.Connection, point: int, *, limit: int) -> int:
    """Delete up to `limit` sealed entries below leaf `point`; returns how many."""
    status = await conn.execute(
        """DELETE FROM audit_log WHERE seq IN (
               SELECT seq FROM audit_log WHERE leaf_index < $1 ORDER BY leaf_index LIMIT $2)""",
        point,
        limit,
    )
    return int(status.split()[-1])


def stored_entry(row: asyncpg.Record) -> StoredEntry:
    """An entry from a row selected with the standard columns."""
    leaf_hash = row["leaf_hash"]
    return StoredEntry(
        seq=row["seq"],
        at=row["at"],
        actor=row["actor"],
        action=row["action"],
        target=row["target"],
        detail=msgspec.json.decode(row["detail"]),
        decision_id=row["decision_id"],
        trace_id=row["trace_id"],
        leaf_index=row["leaf_index"],
        leaf_hash=None if leaf_hash is None else bytes(leaf_hash),
    )


def _checkpoint(row: asyncpg.Record) -> Checkpoint:
    return Checkpoint(
        tree_size=row["tree_size"],
        root_hash=bytes(row["root_hash"]).hex(),
        signed_at=row["signed_at"],
        key_id=row["key_id"],
        signature=row["signature"],
        note=row["note"],
    )


async def search_entries(
    conn: asyncpg.Connection | asyncpg.Pool, query: AuditQuery, *, limit: int
) -> list[StoredEntry]:
    """Entries matching the query, newest first, keyset-paged on seq (`before_seq`).

    Actor and action match a prefix, target a substring; each filter is a bound parameter.
    """
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM audit_log
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
    return [stored_entry(row) for row in rows]


async def find_entry(conn: asyncpg.Connection | asyncpg.Pool, seq: int) -> StoredEntry | None:
    """One entry by seq."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM audit_log WHERE seq = $1", seq)
    return None if row is None else stored_entry(row)


async def find_entries(
    conn: asyncpg.Connection | asyncpg.Pool, seqs: list[int]
) -> list[StoredEntry]:
    """Entries by seq, in seq order."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM audit_log WHERE seq = ANY($1::bigint[]) ORDER BY seq", seqs
    )
    return [stored_entry(row) for row in rows]


def _like(value: str | None) -> str | None:
    """A LIKE prefix with its wildcards escaped (a filter is text, not a pattern)."""
    if value is None:
        return None
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
