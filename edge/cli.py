"""`hub-edge`: make a node key, run the agent, show the spool."""

import asyncio
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import click
import msgspec

from edge.config import ConfigError, EdgeConfig, load_config
from edge.signing import generate_key, private_key_pem, public_key_pem

if TYPE_CHECKING:  # the agent pulls in onnx and video decoding: `-h` must not wait for them
    from edge.agent import AgentReport


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """The hub's edge node: ONNX detection on video, durable spool, signed uploads."""


@main.command()
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("edge.key"),
    show_default=True,
    help="Where to write the private key (PEM); the public key goes beside it as .pub.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing key.")
def keygen(out: Path, force: bool) -> None:
    """Write a new Ed25519 key pair and print the public key for `hub nodes add`."""
    if out.exists() and not force:
        raise click.ClickException(f"{out} exists (use --force to replace the node's identity)")
    key = generate_key()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.touch(mode=0o600, exist_ok=True)
    out.chmod(0o600)
    out.write_text(private_key_pem(key))
    public = out.with_suffix(".pub")
    public.write_text(public_key_pem(key))
    click.echo(public_key_pem(key), nl=False)
    click.echo(
        f"# private key: {out}; register with: hub nodes add NAME --public-key {public}", err=True
    )


def _load(path: Path) -> EdgeConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path))
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a tty).")
@click.option("-v", "--verbose", is_flag=True, help="Log every upload.")
def run(config_path: Path, progress: bool | None, verbose: bool) -> None:
    """Detect on the configured source and upload; a file or folder ends the run."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr, format="%(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    config = _load(config_path)
    if not config.detectors:
        raise click.ClickException("the config lists no [[detectors]]")
    if progress is None:
        progress = sys.stderr.isatty()
    report = asyncio.run(_run(config, progress=progress))
    click.echo(
        f"frames {report.frames}, events {report.events}, refused {report.refused}, "
        f"uploaded {report.upload.accepted + report.upload.duplicate}, "
        f"rejected {report.upload.rejected}, snapshots {report.upload.media}, "
        f"spool {'empty' if report.drained else 'not empty'}"
    )


async def _run(config: EdgeConfig, *, progress: bool) -> "AgentReport":
    from edge.agent import run_agent

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if threading.current_thread() is threading.main_thread():  # signals reach only that one
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    if not progress:
        return await run_agent(config, stop=stop)
    with click.progressbar(length=0, label="frames", file=sys.stderr) as bar:

        def advance(done: int, total: int | None) -> None:
            if total and bar.length != total:
                bar.length = total
            bar.update(done - bar.pos)

        return await run_agent(config, stop=stop, progress=advance)


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def status(config_path: Path, as_json: bool) -> None:
    """Spool depth, age, size and totals."""
    from edge.agent import open_spool

    config = _load(config_path)
    spool = open_spool(config)
    try:
        state = spool.status()
    finally:
        spool.close()
    if as_json:
        click.echo(msgspec.json.encode(state).decode())
        return
    age = "-" if state.oldest_pending_age is None else f"{state.oldest_pending_age:.0f} s"
    click.echo(f"pending events   {state.pending} (oldest {age})")
    click.echo(f"rejected events  {state.rejected}")
    click.echo(f"snapshots        {state.media} ({state.media_uploaded} uploaded)")
    click.echo(f"size             {state.bytes} of {state.max_bytes} bytes")
    click.echo(f"written / sent   {state.written} / {state.sent}")
    click.echo(
        f"evicted          {state.evicted_events} events, {state.evicted_media} snapshots; "
        f"refused {state.refused}"
    )
    for event_id, reason in state.rejections:
        click.echo(f"  rejected {event_id}: {reason}")
