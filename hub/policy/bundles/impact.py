"""Policy impact before activation: replay the decisions logged in the last hours under an
uploaded (not yet active) bundle and say what would change, by entrypoint and recipient.

The log holds inputs as `system/log/mask` left them, so a rule that reads a masked field may
answer differently here than it would live; the report says it replays masked inputs. The
bundle runs in its own engine in this process: nothing is activated, logged or audited.
"""

import asyncio
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import msgspec

from hub.kit.db import Database
from hub.kit.errors import ConflictError, NotFoundError
from hub.policy.bundle import load_bundle_files
from hub.policy.bundles.archive import ArchiveLimits, read_archive
from hub.policy.decision_search import OUTCOME_SQL, RECIPIENT_SQL
from hub.policy.decisions import RESULT_TYPES, Difference, diff
from hub.policy.engines import load_engine
from hub.policy.errors import PolicyEvaluationError
from hub.policy.ports import PolicyEngine

MAX_CHANGES = 100  # changed decisions listed in full (all are counted)


class ImpactCount(msgspec.Struct, frozen=True, kw_only=True):
    """Replayed and changed decisions of one entrypoint or recipient."""

    key: str
    replayed: int
    changed: int


class ImpactChange(msgspec.Struct, frozen=True, kw_only=True):
    """One logged decision the bundle would decide differently."""

    decision_id: str
    at: datetime
    entrypoint: str
    recipient: str | None
    before: str  # outcome: allow, deny, error, other
    after: str
    differences: list[Difference]


class ImpactReport(msgspec.Struct, frozen=True, kw_only=True):
    """What activating `revision` would have changed over the last `hours`."""

    revision: str
    since: datetime
    replayed: int
    changed: int
    by_entrypoint: list[ImpactCount]
    by_recipient: list[ImpactCount]
    changes: list[ImpactChange]
    note: str = "inputs are replayed as logged (masked by system/log/mask)"


class _Logged(msgspec.Struct, frozen=True, kw_only=True):
    decision_id: str
    at: datetime
    entrypoint: str
    recipient: str | None
    outcome: str
    input: str
    result: str


async def bundle_impact(
    db: Database, revision: str, *, now: datetime, hours: int, limit: int
) -> ImpactReport:
    """Replay up to `limit` decisions of the last `hours` (newest first) under `revision`."""
    engine = await _uploaded_engine(db, revision)
    since = now - timedelta(hours=hours)
    rows = await db.pool.fetch(
        f"""SELECT decision_id, at, entrypoint, {RECIPIENT_SQL} AS recipient,
                   {OUTCOME_SQL} AS outcome, input::text AS input, result::text AS result
            FROM policy_decisions WHERE at >= $1 AND entrypoint = ANY($2::text[])
            ORDER BY at DESC LIMIT $3""",  # noqa: S608 (fixed SQL fragments)
        since,
        list(RESULT_TYPES),
        limit,
    )
    logged = [msgspec.convert(dict(r), _Logged) for r in rows]
    changes = await asyncio.to_thread(_replay_all, engine, logged)
    return _report(revision, since, logged, changes)


async def _uploaded_engine(db: Database, revision: str) -> PolicyEngine:
    """The engine of an uploaded bundle; 404 unknown, 409 when it is not `uploaded`."""
    row = await db.pool.fetchrow(
        "SELECT status, archive FROM policy_bundles WHERE revision = $1", revision
    )
    if row is None:
        raise NotFoundError(f"no bundle {revision}", code="bundle_not_found")
    if row["status"] != "uploaded":
        raise ConflictError(
            f"bundle {revision} is {row['status']}: impact is for an uploaded bundle",
            code="bundle_not_uploaded",
        )
    archive = bytes(row["archive"])
    files = read_archive(archive, limits=ArchiveLimits.for_archive(len(archive))).files
    return await asyncio.to_thread(load_engine, load_bundle_files(files))


def _replay_all(engine: PolicyEngine, logged: list[_Logged]) -> list[ImpactChange]:
    """Every logged decision the engine decides differently (blocking: run in a thread)."""
    changes = []
    for item in logged:
        change = _replay(engine, item)
        if change is not None:
            changes.append(change)
    return changes


def _replay(engine: PolicyEngine, item: _Logged) -> ImpactChange | None:
    kind = RESULT_TYPES[item.entrypoint]
    before = _normal(kind, msgspec.json.decode(item.result))
    try:
        after: Any = _normal(
            kind, msgspec.json.decode(engine.evaluate(item.entrypoint, item.input.encode()))
        )
    except (PolicyEvaluationError, msgspec.ValidationError) as exc:
        after = {"error": type(exc).__name__}
    differences = diff(before, after)
    if not differences:
        return None
    return ImpactChange(
        decision_id=item.decision_id,
        at=item.at,
        entrypoint=item.entrypoint,
        recipient=item.recipient,
        before=item.outcome,
        after=_outcome(after),
        differences=differences,
    )


def _normal(kind: type[msgspec.Struct], value: Any) -> Any:
    """A result as its Struct would carry it (defaults filled), so only meaning differs."""
    return msgspec.to_builtins(msgspec.convert(value, kind))


def _outcome(result: Any) -> str:
    if isinstance(result, dict) and "error" in result:
        return "error"
    allow = result.get("allow") if isinstance(result, dict) else None
    return "other" if not isinstance(allow, bool) else ("allow" if allow else "deny")


def _report(
    revision: str, since: datetime, logged: list[_Logged], changes: list[ImpactChange]
) -> ImpactReport:
    return ImpactReport(
        revision=revision,
        since=since,
        replayed=len(logged),
        changed=len(changes),
        by_entrypoint=_counts([i.entrypoint for i in logged], [c.entrypoint for c in changes]),
        by_recipient=_counts(
            [i.recipient or "-" for i in logged], [c.recipient or "-" for c in changes]
        ),
        changes=changes[:MAX_CHANGES],
    )


def _counts(replayed: list[str], changed: list[str]) -> list[ImpactCount]:
    seen, moved = Counter(replayed), Counter(changed)
    return [
        ImpactCount(key=key, replayed=n, changed=moved[key])
        for key, n in sorted(seen.items(), key=lambda i: (-moved[i[0]], -i[1], i[0]))
    ]
