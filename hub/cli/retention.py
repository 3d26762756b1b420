"""`hub retention`, `hub holds` and `hub privacy`: sweeps, legal holds, forgetting subjects."""

import os
import sys
from datetime import datetime
from uuid import UUID

import click

from hub.cli.common import emit, run_with_services
from hub.incidents.holds import HoldCreate, HoldRead, add_hold, list_holds, release_hold
from hub.retention.schemas import ForgetRequest, ForgetResult, SweepReport
from hub.retention.service import forget, rotate, sweep, sweep_deps
from hub.runtime import Services, start_policy, stop_policy

ACTOR = "cli:" + os.environ.get("USER", "operator")


def _sweep_text(report: SweepReport) -> str:
    head = "DRY RUN: would delete" if report.dry_run else f"sweep {report.run_id}: deleted"
    lines = [head]
    for c in report.classes:
        days = (
            f"{c.keep_days_min}-{c.keep_days_max}"
            if c.keep_days_min != c.keep_days_max
            else str(c.keep_days_min)
        )
        extra = f", {len(c.partitions)} partition(s)" if c.partitions else ""
        extra += f", {c.files} file(s)" if c.files else ""
        note = f"  [{c.note}]" if c.note else ""
        lines.append(f"  {c.data_class:<17} keep {days:>9} d  {c.rows:>10} row(s){extra}{note}")
    if report.interrupted_runs:
        lines.append(f"  closed {report.interrupted_runs} interrupted sweep(s)")
    return "\n".join(lines)


def _run_sweep(*, dry_run: bool, as_json: bool, quiet: bool) -> None:
    def progress(what: str, n: int) -> None:
        if not quiet:
            click.echo(f"  {what}: {n}", err=True)

    async def work(services: Services) -> SweepReport:
        # The active bundle decides; without it every answer fails closed (keep and hold).
        watcher = await start_policy(services, role="cli")
        try:
            deps = sweep_deps(
                services.db, services.policy, services.retention, actor=ACTOR, progress=progress
            )
            return await sweep(deps, dry_run=dry_run)
        finally:
            await stop_policy(services, watcher)

    report = run_with_services(work)
    emit(report, as_json=as_json, text=lambda: _sweep_text(report))


@click.group("retention")
def retention() -> None:
    """Delete what retention policy says has expired (legal holds always win)."""


@retention.command("run")
@click.option("--dry-run", is_flag=True, help="Report what would go; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
def retention_run(dry_run: bool, as_json: bool, quiet: bool) -> None:
    """Run one sweep now (exit 1 if another one is running)."""
    _run_sweep(dry_run=dry_run, as_json=as_json, quiet=quiet)


@retention.command("report")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def retention_report(as_json: bool) -> None:
    """What a sweep would delete now, by data class and count (a dry run)."""
    _run_sweep(dry_run=True, as_json=as_json, quiet=True)


@click.group("holds")
def holds() -> None:
    """Legal holds: keep events whatever retention says, until two officers release them."""


def _hold_text(hold: HoldRead) -> str:
    scope = (
        f"{len(hold.event_ids)} event id(s)"
        if hold.event_ids
        else f"track {hold.track_id}"
        if hold.track_id
        else f"camera {hold.camera_id} {hold.from_at:%Y-%m-%dT%H:%M}..{hold.to_at:%Y-%m-%dT%H:%M}"
    )
    release = ""
    if hold.status == "active" and hold.release_requested_by:
        release = f", release asked by {hold.release_requested_by}"
    return (
        f"{hold.id}  {hold.status:<8} {scope}, {hold.held_events} held event(s), "
        f"by {hold.created_by}{release}: {hold.reason}"
    )


@holds.command("add")
@click.option("--reason", required=True)
@click.option("--incident", "incident_id")
@click.option("--event", "event_ids", multiple=True, type=click.UUID, help="Repeat.")
@click.option("--camera", "camera_id")
@click.option("--from", "from_at", type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z"]))
@click.option("--to", "to_at", type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z"]))
@click.option("--track", "track_id")
@click.option("--actor", default=ACTOR, show_default=True, help="The officer placing it.")
@click.option("--json", "as_json", is_flag=True)
def holds_add(
    reason: str,
    incident_id: str | None,
    event_ids: tuple[UUID, ...],
    camera_id: str | None,
    from_at: datetime | None,
    to_at: datetime | None,
    track_id: str | None,
    actor: str,
    as_json: bool,
) -> None:
    """Hold events by id (--event), camera and range (--camera --from --to) or --track."""
    create = HoldCreate(
        reason=reason,
        incident_id=incident_id,
        event_ids=list(event_ids),
        camera_id=camera_id,
        from_at=from_at,
        to_at=to_at,
        track_id=track_id,
    )

    async def work(services: Services) -> HoldRead:
        return await add_hold(services.db, create, actor=actor)

    hold = run_with_services(work)
    emit(hold, as_json=as_json, text=lambda: _hold_text(hold))


@holds.command("list")
@click.option("--status", type=click.Choice(["active", "released"]))
@click.option("--json", "as_json", is_flag=True)
def holds_list(status: str | None, as_json: bool) -> None:
    """Holds, newest first."""

    async def work(services: Services) -> list[HoldRead]:
        return await list_holds(services.db, status=status)

    found = run_with_services(work)
    emit(found, as_json=as_json, text=lambda: "\n".join(map(_hold_text, found)) or "no holds")


@holds.command("release")
@click.argument("hold_id", type=click.UUID)
@click.option("--actor", default=ACTOR, show_default=True, help="The officer acting.")
@click.option("--json", "as_json", is_flag=True)
def holds_release(hold_id: UUID, actor: str, as_json: bool) -> None:
    """First call asks for the release; a different officer's call confirms it."""

    async def work(services: Services) -> HoldRead:
        return await release_hold(services.db, hold_id, actor=actor)

    hold = run_with_services(work)
    emit(hold, as_json=as_json, text=lambda: _hold_text(hold))


@click.group("privacy")
def privacy() -> None:
    """Crypto-shred personal data; rotate the PII master key."""


@privacy.command("forget")
@click.option("--plate", "plate_text", help="The plate number (never stored or printed).")
@click.option("--subject", help="The subject hash instead of a plate.")
@click.option("--reason", required=True)
@click.option("--actor", default=ACTOR, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def privacy_forget(
    plate_text: str | None, subject: str | None, reason: str, actor: str, as_json: bool
) -> None:
    """Destroy a subject's data key: its PII becomes unreadable everywhere, backups too."""
    request = ForgetRequest(reason=reason, plate_text=plate_text, subject=subject)

    async def work(services: Services) -> ForgetResult:
        return await forget(services.db, services.retention, request, actor=actor)

    result = run_with_services(work)
    emit(
        result,
        as_json=as_json,
        text=lambda: (
            f"subject {result.subject} forgotten: {result.vault_rows} sealed record(s) "
            f"unreadable, {result.payloads_scrubbed} payload(s) scrubbed"
        ),
    )


@privacy.command("rotate")
@click.option("--actor", default=ACTOR, show_default=True)
def privacy_rotate(actor: str) -> None:
    """Re-wrap every data key under the current master key (HUB_PII_MASTER_KEY_ID)."""

    async def work(services: Services) -> int:
        return await rotate(services.db, services.retention, actor=actor)

    click.echo(f"re-wrapped {run_with_services(work)} data key(s)")
    sys.exit(0)
