"""`hub release keygen|sign|verify` and `hub upgrade --from DIR`: signed releases only.

`make release` builds the wheel and the CycloneDX SBOM into a folder and signs it with
`hub release sign`; a host installs a release with `hub upgrade`, which copies the folder
aside, verifies the copy against the trusted keys and only then hands the copied wheel to
pip, so a file swapped after the check is never the one installed.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

import click

from hub.cli.release_files import (
    ReleaseError,
    Verified,
    generate_key,
    sign_folder,
    verify_folder,
)

WHEEL_PREFIX = "hub-"

_Folder = click.Path(exists=True, file_okay=False, path_type=Path)
_KeysOption = click.option(
    "--keys",
    "keys_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Trusted release keys (TOML or JSON, the bundle verify-keys layout).",
)


@click.group()
def release() -> None:
    """Sign and verify release folders (wheels, SBOM, SIGNATURES.json)."""


@release.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--key-id", required=True, help="Name of the key in trusted keys files.")
def keygen(path: Path, key_id: str) -> None:
    """Write a new Ed25519 signing key to PATH (0600) and print its trusted-keys entry."""
    try:
        entry = generate_key(path, key_id=key_id)
    except FileExistsError:
        _fail(f"{path} exists; a signing key is never overwritten")
    click.echo(entry, nl=False)


@release.command()
@click.argument("folder", type=_Folder)
@click.option(
    "--key",
    "key_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Ed25519 private key (PEM).",
)
@click.option("--key-id", required=True, help="The key's name in trusted keys files.")
def sign(folder: Path, key_file: Path, key_id: str) -> None:
    """Sign every file of FOLDER into FOLDER/SIGNATURES.json."""
    try:
        names = sign_folder(folder, private_key_pem=key_file.read_bytes(), key_id=key_id)
    except ReleaseError as exc:
        _fail(str(exc))
    click.echo(f"signed {len(names)} file(s) with {key_id}: {', '.join(names)}")


@release.command()
@click.argument("folder", type=_Folder)
@_KeysOption
def verify(folder: Path, keys_file: Path) -> None:
    """Exit 0 only when FOLDER's signature verifies and covers exactly its files."""
    _echo_verified(_verified(folder, keys_file))


@click.command()
@click.option("--from", "folder", required=True, type=_Folder, help="The release folder.")
@_KeysOption
@click.option(
    "--pip-arg",
    "pip_args",
    multiple=True,
    help="Extra argument for pip install (repeat), e.g. --pip-arg=--no-index.",
)
def upgrade(folder: Path, keys_file: Path, pip_args: tuple[str, ...]) -> None:
    """Install the hub wheel of a signed release folder; refuse one that does not verify."""
    with tempfile.TemporaryDirectory(prefix="hub-upgrade-") as scratch:
        copy = Path(scratch) / "release"
        shutil.copytree(folder, copy, symlinks=True)
        checked = _verified(copy, keys_file)
        wheel = _hub_wheel(copy, checked)
        _echo_verified(checked)
        command = [sys.executable, "-m", "pip", "install", "--upgrade", *pip_args, str(wheel)]
        done = subprocess.run(command, check=False)  # noqa: S603 - our interpreter, our file
    if done.returncode != 0:
        _fail(f"pip install failed (exit {done.returncode}); the host is unchanged or partial")
    click.echo(f"installed {wheel.name}")


def _verified(folder: Path, keys_file: Path) -> Verified:
    try:
        return verify_folder(folder, keys_file=keys_file)
    except ReleaseError as exc:
        _fail(f"release refused: {exc}")


def _hub_wheel(folder: Path, checked: Verified) -> Path:
    wheels = [n for n in checked.files if n.startswith(WHEEL_PREFIX) and n.endswith(".whl")]
    if len(wheels) != 1:
        _fail(f"release refused: expected one {WHEEL_PREFIX}*.whl, found {len(wheels)}")
    return folder / wheels[0]


def _echo_verified(checked: Verified) -> None:
    click.echo(f"verified: {len(checked.files)} file(s) signed by {checked.key_id}")


def _fail(message: str) -> NoReturn:
    click.echo(f"hub: {message}", err=True)
    sys.exit(1)
