"""`hub slo ...` (SLO file to Prometheus rules) and the `hub migrate --check` report."""

import asyncio
import sys
from dataclasses import asdict
from pathlib import Path

import click
import msgspec

from hub.settings import Settings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


@click.group()
def slo() -> None:
    """Service level objectives (deploy/slo.yaml)."""


@slo.command("rules")
@click.option("--file", "slo_file", type=click.Path(dir_okay=False), help="SLO file.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
def slo_rules(slo_file: str | None, out: str | None) -> None:
    """Print Prometheus recording rules and burn-rate alerts generated from the SLO file."""
    from hub.observability.slo import SloError, load_spec, render_rules

    try:
        text = render_rules(load_spec(Path(slo_file or _settings().slo_file)))
    except SloError as exc:
        click.echo(f"hub: {exc}", err=True)
        sys.exit(1)
    if out:
        Path(out).write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}")
    else:
        click.echo(text, nl=False)


@slo.command("check")
@click.option("--file", "slo_file", type=click.Path(dir_okay=False), help="SLO file.")
@click.option("--runbooks", default="runbooks", show_default=True, help="Runbook folder.")
def slo_check(slo_file: str | None, runbooks: str) -> None:
    """Validate the SLO file and that every alert has its runbook page."""
    from hub.observability.slo import SloError, load_spec

    try:
        spec = load_spec(Path(slo_file or _settings().slo_file))
    except SloError as exc:
        click.echo(f"hub: {exc}", err=True)
        sys.exit(1)
    missing = [a for a in spec.alert_names() if not (Path(runbooks) / f"{a}.md").is_file()]
    if missing:
        click.echo(f"hub: alerts without a runbook: {', '.join(missing)}", err=True)
        sys.exit(1)
    click.echo(f"{len(spec.slos)} SLOs, {len(spec.alert_names())} alerts, every runbook present")


def check_migrations(settings: Settings, *, as_json: bool) -> int:
    """Report pending migrations that would lock a big table; the exit status (0 safe, 1 not)."""
    from hub.kit.db import connect_once
    from hub.observability.migration_check import CheckReport, check_pending

    async def work() -> CheckReport:
        conn = await connect_once(settings.database_url)
        try:
            return await check_pending(
                conn,
                versions_dir=MIGRATIONS / "versions",
                sql_dir=MIGRATIONS / "sql",
                big_rows=settings.migrate_big_table_rows,
            )
        finally:
            await conn.close()

    try:
        report = asyncio.run(work())
    except OSError as exc:
        click.echo(f"hub: cannot reach PostgreSQL: {exc}", err=True)
        return 1
    if as_json:
        click.echo(msgspec.json.encode({**asdict(report), "ok": report.ok}).decode())
        return 0 if report.ok else 1
    click.echo(f"{len(report.pending)} pending migration(s): {', '.join(report.pending) or '-'}")
    for name in report.unchecked:
        click.echo(f"unchecked (not a SQL migration): {name}")
    for f in report.findings:
        click.echo(
            f"REFUSED {f.migration}: {f.rule} on {f.table} (~{f.rows} rows): {f.statement}\n"
            f"  instead: {f.advice}"
        )
    return 0 if report.ok else 1


def _settings() -> Settings:
    from hub.cli.common import settings_or_exit

    return settings_or_exit()
