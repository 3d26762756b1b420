"""The retention sweep: ask policy how long each class lives, then delete what has expired.

Whole monthly partitions go by DETACH + DROP when every row in them has expired and none is
held; everything else goes in bounded batches, each its own transaction, with progress
committed on a `retention_run` row. A crash loses at most the batch in flight; the next
sweep closes (and audits) the interrupted run and carries on where the data says.
"""

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import structlog

from hub.audit import AuditEntry, append_entry, prune_entries, prune_plan
from hub.kit.clock import Clock, utcnow
from hub.kit.db import Database
from hub.policy.schemas import RetentionResult
from hub.policy.service import PolicyService
from hub.retention import repository
from hub.retention.errors import SweepRunningError
from hub.retention.rules import (
    EVENT_CLASSES,
    GLOBAL_CLASSES,
    NEVER,
    Answer,
    ClassCutoffs,
    combine,
    cutoff_for,
    cutoffs_by_camera,
    month_of_partition,
    partition_bounds,
    partition_expired,
)
from hub.retention.schemas import ClassReport, SweepReport

log = structlog.get_logger("hub.retention.sweep")

SWEEP_LOCK_KEY = 0x6875625F72657465  # "hub_rete"
ENTRYPOINT = "hub/retention/decision"
Progress = Callable[[str, int], None]


class SweepInput(msgspec.Struct, frozen=True, kw_only=True):
    """`RetentionInput` plus the camera, whose jurisdiction the policy looks up itself."""

    data_class: str
    jurisdiction: str = ""
    agency: str | None = None
    legal_hold: bool = False
    camera_id: str = ""


@dataclass(frozen=True, slots=True)
class SweepDeps:
    """Collaborators of a sweep."""

    db: Database
    policy: PolicyService
    media_root: Path
    batch_size: int = 5_000
    batch_pause_ms: int = 20
    clock: Clock = utcnow
    progress: Progress | None = None
    actor: str = "worker:retention"
    # HUB_AUDIT_WITNESS: a verifying witness that lacks checkpoints holds audit pruning back.
    audit_witness: str = ""


@dataclass(slots=True)
class _Plan:
    now: datetime
    events: dict[str, ClassCutoffs] = field(default_factory=dict)
    globals: dict[str, Answer] = field(default_factory=dict)
    decision_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Tally:
    rows: dict[str, int] = field(default_factory=dict)
    partitions: dict[str, list[str]] = field(default_factory=dict)
    files: int = 0


async def run_sweep(deps: SweepDeps, *, dry_run: bool) -> SweepReport:
    """One sweep (or, with `dry_run`, a report of what it would delete, writing nothing)."""
    started = deps.clock()
    if dry_run:
        # A report only counts and writes nothing (its retention decisions are logged on
        # the primary by the engine): a replica within the lag bound (ADR 0016) is fine.
        async with deps.db.reader() as conn:
            plan = await _plan(deps, conn)
            tally = await _count_only(deps, conn, plan)
        return _report(None, True, started, deps.clock(), plan, tally, 0)
    async with deps.db.pool.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", SWEEP_LOCK_KEY):
            raise SweepRunningError("a retention sweep is already running")
        try:
            interrupted = await _close_interrupted(deps, conn)
            plan = await _plan(deps, conn)
            run_id = await _open_run(conn, deps, plan)
            tally = await _sweep(deps, conn, plan, run_id)
            report = _report(run_id, False, started, deps.clock(), plan, tally, interrupted)
            await _finish_run(conn, deps, report)
            return report
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", SWEEP_LOCK_KEY)


async def _plan(deps: SweepDeps, conn: asyncpg.Connection) -> _Plan:
    """Ask policy for every class: per camera (jurisdiction and subscribed agencies) for
    event classes, once for the others."""
    plan = _Plan(now=deps.clock())
    cameras = await repository.distinct_cameras(conn)
    agencies = await repository.active_agencies(conn)
    for data_class in EVENT_CLASSES:
        answers = {}
        for camera in cameras:
            covering = [name for name, subs in agencies if not subs or camera in subs]
            asked = [await _ask(deps, plan, data_class, camera, None)]
            asked += [await _ask(deps, plan, data_class, camera, a) for a in covering]
            answers[camera] = combine(asked)
        plan.events[data_class] = cutoffs_by_camera(answers, now=plan.now)
    for data_class in GLOBAL_CLASSES:
        plan.globals[data_class] = await _ask(deps, plan, data_class, "", None)
    return plan


async def _ask(
    deps: SweepDeps, plan: _Plan, data_class: str, camera: str, agency: str | None
) -> Answer:
    query = SweepInput(data_class=data_class, camera_id=camera, agency=agency)
    result, record = await deps.policy.decide(ENTRYPOINT, query, result_type=RetentionResult)
    plan.decision_ids.append(record.decision_id)
    return Answer(keep_days=result.keep_days, hold=result.hold)


async def _close_interrupted(deps: SweepDeps, conn: asyncpg.Connection) -> int:
    """Audit and close sweeps that died mid-way (we hold the lock: none is running)."""
    rows = await conn.fetch(
        "SELECT id, counts, decision_ids FROM retention_run WHERE status = 'running'"
    )
    for row in rows:
        async with conn.transaction():
            await conn.execute(
                """UPDATE retention_run SET status = 'interrupted', finished_at = $2
                   WHERE id = $1""",
                row["id"],
                deps.clock(),
            )
            counts = msgspec.json.decode(row["counts"]) if isinstance(row["counts"], str) else {}
            detail: dict[str, int | str | list[str] | None] = {
                "status": "interrupted",
                "run_id": str(row["id"]),
                "decision_ids": list(row["decision_ids"]),
            }
            detail.update({k: int(v) for k, v in counts.items()})
            await append_entry(
                conn,
                AuditEntry(
                    actor=deps.actor,
                    action="retention.sweep",
                    target=f"retention_run:{row['id']}",
                    detail=dict(detail),
                    decision_id=row["decision_ids"][0] if row["decision_ids"] else None,
                ),
                clock=deps.clock,
            )
    return len(rows)


async def _open_run(conn: asyncpg.Connection, deps: SweepDeps, plan: _Plan) -> uuid.UUID:
    run_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO retention_run (id, started_at, actor, decision_ids) VALUES ($1, $2, $3, $4)",
        run_id,
        plan.now,
        deps.actor,
        plan.decision_ids,
    )
    return run_id


async def _progress(conn: asyncpg.Connection, run_id: uuid.UUID, key: str, n: int) -> None:
    """Add `n` to the run's count for `key` (inside the batch's transaction)."""
    await conn.execute(
        """UPDATE retention_run SET counts = jsonb_set(counts, ARRAY[$2],
               to_jsonb(coalesce((counts ->> $2)::bigint, 0) + $3)) WHERE id = $1""",
        run_id,
        key,
        n,
    )


def _tell(deps: SweepDeps, what: str, n: int) -> None:
    if deps.progress is not None:
        deps.progress(what, n)


async def _pause(deps: SweepDeps) -> None:
    if deps.batch_pause_ms:
        await asyncio.sleep(deps.batch_pause_ms / 1000)


async def _sweep(
    deps: SweepDeps, conn: asyncpg.Connection, plan: _Plan, run_id: uuid.UUID
) -> _Tally:
    tally = _Tally()
    await _drop_partitions(deps, conn, plan, run_id, tally)
    await _delete_events(deps, conn, plan, run_id, tally)
    await _scrub_pii(deps, conn, plan, run_id, tally)
    await _delete_media(deps, conn, plan, run_id, tally, dry_run=False)
    await _delete_globals(deps, conn, plan, run_id, tally, dry_run=False)
    return tally


async def _expired_partitions(
    conn: asyncpg.Connection, plan: _Plan
) -> list[tuple[str, datetime, datetime]]:
    earliest = plan.events["detection_event"].earliest()
    found = []
    for name in await repository.event_partitions(conn):
        month = month_of_partition(name)
        if month is None or not partition_expired(month, earliest_cutoff=earliest):
            continue
        low, high = partition_bounds(month)
        if not await repository.partition_is_held(conn, name, low=low, high=high):
            found.append((name, low, high))
    return found


async def _drop_partitions(
    deps: SweepDeps, conn: asyncpg.Connection, plan: _Plan, run_id: uuid.UUID, tally: _Tally
) -> None:
    for name, low, high in await _expired_partitions(conn, plan):
        try:
            async with conn.transaction():
                rows = await repository.count_rows(conn, name)
                await repository.drop_partition(conn, name, low=low, high=high)
                await _progress(conn, run_id, "detection_event.rows", rows)
                await _progress(conn, run_id, "detection_event.partitions", 1)
        except asyncpg.LockNotAvailableError:
            log.warning("partition busy; left for the next sweep", partition=name)
            continue
        tally.rows["detection_event"] = tally.rows.get("detection_event", 0) + rows
        tally.partitions.setdefault("detection_event", []).append(name)
        _tell(deps, f"dropped {name}", rows)


async def _delete_events(
    deps: SweepDeps, conn: asyncpg.Connection, plan: _Plan, run_id: uuid.UUID, tally: _Tally
) -> None:
    await _in_batches(deps, conn, plan, run_id, tally, "detection_event", repository.delete_events)


async def _scrub_pii(
    deps: SweepDeps, conn: asyncpg.Connection, plan: _Plan, run_id: uuid.UUID, tally: _Tally
) -> None:
    await _in_batches(deps, conn, plan, run_id, tally, "pii_attribute", repository.scrub_pii)


async def _in_batches(
    deps: SweepDeps,
    conn: asyncpg.Connection,
    plan: _Plan,
    run_id: uuid.UUID,
    tally: _Tally,
    data_class: str,
    step: Any,
) -> None:
    """Run `step` in bounded batches per (cutoff, cameras) group, keyset by (time, id), each
    batch its own transaction with its progress row, pausing between batches."""
    for cutoff, cameras in plan.events[data_class].groups().items():
        after: tuple[datetime, int] = (NEVER, 0)
        while True:
            async with conn.transaction():
                n, last = await step(
                    conn, cutoff=cutoff, cameras=cameras, after=after, limit=deps.batch_size
                )
                if n:
                    await _progress(conn, run_id, f"{data_class}.rows", n)
            tally.rows[data_class] = tally.rows.get(data_class, 0) + n
            if last is None:
                break
            after = last
            if n:
                _tell(deps, data_class, n)
                await _pause(deps)


def _media_window(plan: _Plan) -> tuple[dict[str, datetime], datetime, datetime]:
    """Per-camera snapshot cutoffs, the newest cutoff (younger media is never a candidate)
    and the cutoff for media no event references (the longest snapshot retention)."""
    snapshot = plan.events["snapshot"]
    cutoffs = dict(snapshot.by_camera)
    newest = max(cutoffs.values(), default=NEVER)
    oldest = min(cutoffs.values(), default=NEVER)
    return cutoffs, newest, oldest


async def _delete_media(
    deps: SweepDeps,
    conn: asyncpg.Connection,
    plan: _Plan,
    run_id: uuid.UUID | None,
    tally: _Tally,
    *,
    dry_run: bool,
) -> None:
    cutoffs, newest, oldest = _media_window(plan)
    if newest <= NEVER:
        return
    while True:
        async with conn.transaction():
            doomed = await repository.expired_media(
                conn,
                created_before=newest,
                cutoffs=cutoffs,
                orphan_before=oldest,
                limit=deps.batch_size if not dry_run else 1_000_000_000,
                lock=not dry_run,
            )
            if dry_run or not doomed:
                tally.files += len(doomed)
                return
            # Files first, rows second, in the rows' transaction: a crash leaves rows whose
            # files are gone, and the next sweep finishes them (unlink tolerates absence).
            for _, path in doomed:
                (deps.media_root / path).unlink(missing_ok=True)
            n = await repository.delete_media_rows(conn, [sha for sha, _ in doomed])
            if run_id is not None:
                await _progress(conn, run_id, "snapshot.files", n)
        tally.files += n
        _tell(deps, "snapshot", n)
        await _pause(deps)


async def _delete_globals(
    deps: SweepDeps,
    conn: asyncpg.Connection,
    plan: _Plan,
    run_id: uuid.UUID | None,
    tally: _Tally,
    *,
    dry_run: bool,
) -> None:
    jobs = (
        ("delivery_attempt", repository.delete_deliveries),
        ("decision_log", repository.delete_decisions),
    )
    for data_class, delete in jobs:
        cutoff = cutoff_for(plan.globals[data_class], now=plan.now)
        if cutoff <= NEVER:
            continue
        while True:
            async with conn.transaction():
                n = await delete(conn, cutoff=cutoff, limit=deps.batch_size, dry_run=dry_run)
                if n and run_id is not None and not dry_run:
                    await _progress(conn, run_id, f"{data_class}.rows", n)
            tally.rows[data_class] = tally.rows.get(data_class, 0) + n
            if dry_run or n < deps.batch_size:
                break
            _tell(deps, data_class, n)
            await _pause(deps)
    audit_cutoff = cutoff_for(plan.globals["audit_entry"], now=plan.now)
    if audit_cutoff > NEVER and dry_run:
        would = await prune_plan(conn, before=audit_cutoff, witness=deps.audit_witness)
        tally.rows["audit_entry"] = would.deleted
    elif audit_cutoff > NEVER:
        # Only below the latest signed checkpoint; the audit log writes its own entry.
        pruned = await prune_entries(
            deps.db,
            before=audit_cutoff,
            actor=deps.actor,
            batch=deps.batch_size,
            witness=deps.audit_witness,
        )
        tally.rows["audit_entry"] = pruned.deleted


async def _count_only(deps: SweepDeps, conn: asyncpg.Connection, plan: _Plan) -> _Tally:
    """The dry run: the same selections, counted, inside a read-only transaction."""
    tally = _Tally()
    async with conn.transaction(readonly=True):
        for name, _, _ in await _expired_partitions(conn, plan):
            tally.partitions.setdefault("detection_event", []).append(name)
        for cutoff, cameras in plan.events["detection_event"].groups().items():
            n = await repository.count_events(conn, cutoff=cutoff, cameras=cameras)
            tally.rows["detection_event"] = tally.rows.get("detection_event", 0) + n
        for cutoff, cameras in plan.events["pii_attribute"].groups().items():
            n = await repository.count_pii(conn, cutoff=cutoff, cameras=cameras)
            tally.rows["pii_attribute"] = tally.rows.get("pii_attribute", 0) + n
    await _delete_media(deps, conn, plan, None, tally, dry_run=True)
    await _delete_globals(deps, conn, plan, None, tally, dry_run=True)
    return tally


def _report(
    run_id: uuid.UUID | None,
    dry_run: bool,
    started: datetime,
    finished: datetime,
    plan: _Plan,
    tally: _Tally,
    interrupted: int,
) -> SweepReport:
    classes = []
    for data_class in EVENT_CLASSES:
        days = list(plan.events[data_class].days.values())
        note = "held (policy)" if plan.events[data_class].earliest() <= NEVER and days else ""
        classes.append(
            ClassReport(
                data_class=data_class,
                keep_days_min=min(days, default=None),
                keep_days_max=max(days, default=None),
                rows=tally.rows.get(data_class, 0),
                partitions=tally.partitions.get(data_class, []),
                files=tally.files if data_class == "snapshot" else 0,
                note=note,
            )
        )
    for data_class in GLOBAL_CLASSES:
        answer = plan.globals[data_class]
        note = "held (policy)" if answer.hold else ""
        if data_class == "audit_entry":
            note = "pruned only below the latest signed checkpoint (ADR 0011)"
        classes.append(
            ClassReport(
                data_class=data_class,
                keep_days_min=answer.keep_days,
                keep_days_max=answer.keep_days,
                rows=tally.rows.get(data_class, 0),
                note=note,
            )
        )
    return SweepReport(
        run_id=None if run_id is None else str(run_id),
        dry_run=dry_run,
        started_at=started,
        finished_at=finished,
        classes=classes,
        decision_ids=plan.decision_ids,
        interrupted_runs=interrupted,
    )


async def _finish_run(conn: asyncpg.Connection, deps: SweepDeps, report: SweepReport) -> None:
    """Close the run and write the sweep's audit entry (counts and decision ids)."""
    detail: dict[str, int | str | list[str] | None] = {"status": "finished"}
    for item in report.classes:
        if item.data_class != "audit_entry":
            detail[f"{item.data_class}.rows"] = item.rows
    detail["detection_event.partitions"] = report.classes[0].partitions
    detail["snapshot.files"] = report.classes[1].files
    detail["decision_ids"] = report.decision_ids
    async with conn.transaction():
        await conn.execute(
            """UPDATE retention_run SET status = 'finished', finished_at = $2 WHERE id = $1""",
            uuid.UUID(report.run_id),
            report.finished_at,
        )
        await append_entry(
            conn,
            AuditEntry(
                actor=deps.actor,
                action="retention.sweep",
                target=f"retention_run:{report.run_id}",
                detail=dict(detail),
                decision_id=report.decision_ids[0] if report.decision_ids else None,
            ),
            clock=deps.clock,
        )


def cutoff_days_ago(now: datetime, days: int) -> datetime:
    """`now` minus `days` (for callers building reports)."""
    return now - timedelta(days=days)
