"""Entry point of the `hub` command."""

import asyncio
import os
import sys
from typing import TYPE_CHECKING

import click
import msgspec

from hub.cli.common import emit, settings_or_exit
from hub.cli.lazy import LazyGroup

if TYPE_CHECKING:
    from hub.settings import Settings


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """The hub: policy-driven integration hub for edge-to-cloud video AI.

    Settings come from HUB_* environment variables (and HUB_SETTINGS_FILE); see the README.
    """
    _log_to_stderr()


def _log_to_stderr() -> None:
    """Every command logs to stderr through the hub's renderer, so stdout carries only the
    command's output (`--json` pipes into jq). Bad settings are left for the command to say."""
    from hub.kit.logging import configure_logging
    from hub.settings import SettingsError, load_settings

    try:
        configure_logging(load_settings())
    except SettingsError:
        return


@main.command()
@click.option("--host", help="Bind address (default: HUB_API_HOST).")
@click.option("--port", type=int, help="Port (default: HUB_API_PORT).")
@click.option("--workers", type=int, help="Worker processes (default: HUB_API_WORKERS).")
def api(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the HTTP API (Litestar on uvicorn)."""
    from hub.observability import prepare_process
    from hub.observability.balance import create_board, remove_board

    settings = settings_or_exit()
    prepare_process(settings)  # metrics folder (inherited by every API worker process)
    # Each worker builds its app from the environment: it must know how many share the socket,
    # and where they publish their load so that connections move to the least busy (ADR 0040).
    count = workers or settings.api_workers
    os.environ["HUB_API_WORKERS"] = str(count)
    board = create_board() if count > 1 else None
    if board is not None:
        os.environ["HUB_API_LOAD_BOARD"] = str(board.path)
    try:
        _serve(settings, host=host, port=port, workers=count)
    finally:
        if board is not None:
            remove_board(board)


def _serve(settings: "Settings", *, host: str | None, port: int | None, workers: int) -> None:
    import uvicorn

    from hub.identity.mtls import uvicorn_tls_options

    uvicorn.run(
        "hub.app:create_app",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=workers,
        log_level=settings.log_level,
        access_log=False,
        # uvicorn's own lines go through the hub's (JSON) logging, configured by the app.
        log_config=None,
        proxy_headers=False,
        # TLS (and optional client certificates for mTLS routes) when HUB_TLS_CERT_FILE is set.
        **uvicorn_tls_options(settings),
    )


@main.command()
def worker() -> None:
    """Run the arq worker: deliveries and scheduled jobs."""
    from hub.worker import run

    run(settings_or_exit())


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--check",
    is_flag=True,
    help="Apply nothing: exit 1 if a pending migration would hold a long lock on a big table.",
)
def migrate(as_json: bool, check: bool) -> None:
    """Create the database if missing, apply migrations, create partitions ahead."""
    from hub.migrate import MigrationError
    from hub.migrate import migrate as run_migrate

    if check:
        from hub.cli.ops import check_migrations

        sys.exit(check_migrations(settings_or_exit(), as_json=as_json))

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


@main.command()
@click.option("--no-demo", is_flag=True, help="Do not start the demo edge node.")
@click.option(
    "--synthetic-demo",
    is_flag=True,
    help="Run the synthetic demo node (edge/demo.py) instead of the real edge agent.",
)
@click.option(
    "--no-agencies", is_flag=True, help="Do not start the demo agency or register its agencies."
)
@click.option(
    "--agency-port",
    type=click.IntRange(1, 65535),
    default=8101,
    show_default=True,
    help="Port of the demo agency (its agencies are registered for it once).",
)
@click.option("--no-console", is_flag=True, help="Do not start the compliance console.")
@click.option("--console-port", type=click.IntRange(1, 65535), default=8501, show_default=True)
def up(
    no_demo: bool,
    synthetic_demo: bool,
    no_agencies: bool,
    agency_port: int,
    no_console: bool,
    console_port: int,
) -> None:
    """Development supervisor: migrate, then run API, worker, a demo agency, the compliance
    console and a demo edge node."""
    from hub.cli.demo_plan import UpOptions
    from hub.cli.up import supervise

    options = UpOptions(
        demo=not no_demo,
        synthetic=synthetic_demo,
        agencies=not no_agencies,
        agency_port=agency_port,
        console=not no_console,
        console_port=console_port,
    )
    sys.exit(supervise(settings_or_exit(), options))


@main.command("demo-agency")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(["rest", "soap", "xml"]),
    help="Receivers to serve (repeat; default: all three).",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8101, show_default=True)
@click.option(
    "--secret-file",
    type=click.Path(exists=True, dir_okay=False),
    help="File of Standard Webhooks secrets, one a line (never on the command line: ps shows it).",
)
@click.option(
    "--xml-cert",
    type=click.Path(exists=True, dir_okay=False),
    help="Certificate whose key must sign XML alerts.",
)
def demo_agency(
    kinds: tuple[str, ...], host: str, port: int, secret_file: str | None, xml_cert: str | None
) -> None:
    """A demo agency: REST, SOAP and XML receivers that check signatures, schemas and
    idempotency, with `/_inbox` to read back what arrived."""
    from pathlib import Path

    import uvicorn

    from hub.demo_agency.app import KINDS, Kind, create_receiver_app
    from hub.demo_agency.options import ReceiverOptions

    chosen: list[Kind] = [k for k in KINDS if k in kinds] if kinds else list(KINDS)
    options = ReceiverOptions(
        webhook_secrets=_secrets(secret_file),
        xml_trusted_cert_pem=Path(xml_cert).read_bytes() if xml_cert else None,
        public_base_url=f"http://{host}:{port}",
    )
    click.echo(f"demo agency ({', '.join(chosen)}) on http://{host}:{port}; inbox at /_inbox/")
    uvicorn.run(create_receiver_app(chosen, options), host=host, port=port, log_level="warning")


def _secrets(path: str | None) -> list[str]:
    """The non-empty lines of a secrets file (none without one)."""
    if path is None:
        return []
    from pathlib import Path

    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


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


if __name__ == "__main__":
    main()
