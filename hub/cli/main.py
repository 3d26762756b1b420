"""Entry point of the `hub` command."""

import asyncio
import sys

import click
import msgspec

from hub.cli.common import emit, run_with_services, settings_or_exit
from hub.cli.nodes import nodes
from hub.cli.policy import policy_group
from hub.cli.tokens import tokens
from hub.runtime import Services


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """The hub: policy-driven integration hub for edge-to-cloud video AI.

    Settings come from HUB_* environment variables (and HUB_SETTINGS_FILE); see the README.
    """


@main.command()
@click.option("--host", help="Bind address (default: HUB_API_HOST).")
@click.option("--port", type=int, help="Port (default: HUB_API_PORT).")
@click.option("--workers", type=int, help="Worker processes (default: HUB_API_WORKERS).")
def api(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the HTTP API (Litestar on uvicorn)."""
    import uvicorn

    settings = settings_or_exit()
    uvicorn.run(
        "hub.app:create_app",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=workers or settings.api_workers,
        log_level=settings.log_level,
        access_log=False,
        proxy_headers=False,
    )


@main.command()
def worker() -> None:
    """Run the arq worker: deliveries and scheduled jobs."""
    from hub.worker import run

    run(settings_or_exit())


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def migrate(as_json: bool) -> None:
    """Create the database if missing, apply migrations, create partitions ahead."""
    from hub.migrate import MigrationError
    from hub.migrate import migrate as run_migrate

    try:
        report = asyncio.run(run_migrate(settings_or_exit()))
    except MigrationError as exc:
        click.echo(f"hub: migration failed: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(f"hub: cannot reach PostgreSQL: {exc}", err=True)
        sys.exit(1)
    emit(
        report,
        as_json=as_json,
        text=lambda: (
            f"database {'created' if report.database_created else 'present'}; "
            f"{len(report.applied)} migration(s) applied; "
            f"partitions created: {', '.join(report.partitions.created) or 'none'}"
        ),
    )


@main.group()
def audit() -> None:
    """Inspect the hash-chained audit log."""


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def audit_verify(as_json: bool) -> None:
    """Walk the audit chain; exit 1 and name the first broken link if any."""
    from hub.audit import ChainReport, verify_chain

    async def work(services: Services) -> ChainReport:
        return await verify_chain(services.db.pool)

    report = run_with_services(work)
    emit(
        report,
        as_json=as_json,
        text=lambda: (
            f"audit chain intact: {report.entries} entries"
            if report.ok
            else f"audit chain BROKEN at entry {report.broken_at}: {report.problem}"
        ),
    )
    sys.exit(0 if report.ok else 1)


@main.command()
@click.option("--no-demo", is_flag=True, help="Do not start the demo edge node.")
def up(no_demo: bool) -> None:
    """Development supervisor: migrate, then run API, worker and a demo edge node."""
    from hub.cli.up import supervise

    sys.exit(supervise(settings_or_exit(), demo=not no_demo))


@main.command("export-schemas")
@click.argument("folder", default="schemas", type=click.Path(file_okay=False))
def export_schemas(folder: str) -> None:
    """Write the JSON Schema of hub.detection.v1 into FOLDER."""
    from pathlib import Path

    from hub.contracts.detection_v1 import json_schema

    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    path = target / "hub.detection.v1.schema.json"
    path.write_bytes(msgspec.json.format(msgspec.json.encode(json_schema()), indent=2) + b"\n")
    click.echo(f"wrote {path}")


main.add_command(nodes)
main.add_command(policy_group)
main.add_command(tokens)


if __name__ == "__main__":
    main()
