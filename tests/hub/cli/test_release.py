"""Signed releases: `hub release keygen|sign|verify`, `hub upgrade --from` refusing what does
not verify, and `make release` building, signing and verifying a real folder."""

import base64
import hashlib
import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from hub.cli.main import main
from hub.cli.release_files import SIGNATURES
from tests.support import repo_root

WHEEL = "hub-9.9.9-py3-none-any.whl"
PROBE = "hub_release_probe.py"


def hub(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def make_wheel(path: Path) -> None:
    """A minimal installable wheel of a distribution named `hub` (one module)."""
    files = {
        PROBE: b"RELEASED = True\n",
        "hub-9.9.9.dist-info/METADATA": b"Metadata-Version: 2.1\nName: hub\nVersion: 9.9.9\n",
        "hub-9.9.9.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("hub-9.9.9.dist-info/RECORD,,")
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
        wheel.writestr("hub-9.9.9.dist-info/RECORD", "\n".join(record) + "\n")


@pytest.fixture
def signer(tmp_path: Path) -> tuple[Path, Path]:
    """A new signing key and the trusted-keys file naming it."""
    key = tmp_path / "keys" / "release.pem"
    made = hub("release", "keygen", key, "--key-id", "release-test")
    assert made.exit_code == 0, made.output
    trusted = tmp_path / "trusted.toml"
    trusted.write_text(made.output)
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    return key, trusted


@pytest.fixture
def folder(tmp_path: Path, signer: tuple[Path, Path]) -> Path:
    """A signed release folder: the wheel and an SBOM."""
    release = tmp_path / "release"
    release.mkdir()
    make_wheel(release / WHEEL)
    (release / "sbom.cdx.json").write_text('{"bomFormat": "CycloneDX"}')
    signed = hub("release", "sign", release, "--key", signer[0], "--key-id", "release-test")
    assert signed.exit_code == 0, signed.output
    return release


def test_a_signed_folder_verifies(folder: Path, signer: tuple[Path, Path]) -> None:
    checked = hub("release", "verify", folder, "--keys", signer[1])
    assert checked.exit_code == 0, checked.output
    assert "2 file(s) signed by release-test" in checked.output
    token = json.loads((folder / SIGNATURES).read_text())["signatures"][0]
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "Ed25519", "typ": "JWT", "kid": "release-test"}


def _tamper_wheel(folder: Path) -> None:
    with (folder / WHEEL).open("ab") as fh:
        fh.write(b"\0")


def _add_file(folder: Path) -> None:
    (folder / "extra.whl").write_bytes(b"not signed")


def _remove_sbom(folder: Path) -> None:
    (folder / "sbom.cdx.json").unlink()


def _drop_signature(folder: Path) -> None:
    (folder / SIGNATURES).unlink()


def _forge_payload(folder: Path) -> None:
    # Keep the signature, swap the payload for one listing a different digest.
    document = json.loads((folder / SIGNATURES).read_text())
    head, payload, sig = document["signatures"][0].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["files"][0]["hash"] = "0" * 64
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    document["signatures"] = [f"{head}.{forged}.{sig}"]
    (folder / SIGNATURES).write_text(json.dumps(document))


def _add_link(folder: Path) -> None:
    (folder / "link.whl").symlink_to(folder / WHEEL)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_tamper_wheel, f"{WHEEL} does not match its signed digest"),
        (_add_file, "files not covered by the signature: extra.whl"),
        (_remove_sbom, "signed files missing from the folder: sbom.cdx.json"),
        (_drop_signature, "the release is not signed"),
        (_forge_payload, "does not verify with key 'release-test'"),
        (_add_link, "only regular files"),
    ],
)
def test_a_damaged_folder_is_refused(
    folder: Path, signer: tuple[Path, Path], damage: object, reason: str
) -> None:
    assert callable(damage)
    damage(folder)
    checked = hub("release", "verify", folder, "--keys", signer[1])
    assert checked.exit_code == 1
    assert reason in checked.output


def test_a_key_that_is_not_trusted_is_refused(folder: Path, tmp_path: Path) -> None:
    other = hub("release", "keygen", tmp_path / "other.pem", "--key-id", "release-test")
    (tmp_path / "other.toml").write_text(other.output)
    # Same key id, another key: the signature must not verify.
    checked = hub("release", "verify", folder, "--keys", tmp_path / "other.toml")
    assert checked.exit_code == 1
    assert "does not verify with key 'release-test'" in checked.output
    (tmp_path / "unknown.toml").write_text(other.output.replace("release-test", "someone"))
    unknown = hub("release", "verify", folder, "--keys", tmp_path / "unknown.toml")
    assert "is not a trusted release signing key" in unknown.output


def test_keygen_never_overwrites_a_key(signer: tuple[Path, Path]) -> None:
    before = signer[0].read_bytes()
    again = hub("release", "keygen", signer[0], "--key-id", "release-test")
    assert again.exit_code == 1
    assert signer[0].read_bytes() == before


def _upgrade(folder: Path, trusted: Path, target: Path) -> Result:
    pip_args = ["--target", str(target), "--no-deps", "--no-index", "--no-compile", "-q"]
    return hub(
        "upgrade", "--from", folder, "--keys", trusted, *[f"--pip-arg={a}" for a in pip_args]
    )


def test_upgrade_installs_a_verified_release(
    folder: Path, signer: tuple[Path, Path], tmp_path: Path
) -> None:
    target = tmp_path / "site"
    done = _upgrade(folder, signer[1], target)
    assert done.exit_code == 0, done.output
    assert (target / PROBE).read_text() == "RELEASED = True\n"
    assert f"installed {WHEEL}" in done.output


def test_upgrade_refuses_a_release_that_does_not_verify(
    folder: Path, signer: tuple[Path, Path], tmp_path: Path
) -> None:
    _tamper_wheel(folder)
    target = tmp_path / "site"
    done = _upgrade(folder, signer[1], target)
    assert done.exit_code == 1
    assert "release refused" in done.output
    assert not target.exists()  # pip never ran


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_make_release_builds_signs_and_verifies(tmp_path: Path) -> None:
    out, key = tmp_path / "release", tmp_path / "keys" / "release.pem"
    command = ["make", "-s", "-o", "install", "release", f"RELEASE_DIR={out}", f"RELEASE_KEY={key}"]
    done = subprocess.run(  # noqa: S603 - make from PATH, our own arguments
        command,
        cwd=repo_root(),
        env={**os.environ, "PIP_NO_INDEX": "1"},
        capture_output=True,
        text=True,
        check=False,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == [SIGNATURES, "hub-0.1.0-py3-none-any.whl", "sbom.cdx.json"]
    sbom = json.loads((out / "sbom.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    assert sbom["metadata"]["component"]["name"] == "hub"
    assert {"nats-py", "litestar", "cryptography"} <= {c["name"] for c in sbom["components"]}
    checked = hub("release", "verify", out, "--keys", f"{key}.trusted.toml")
    assert checked.exit_code == 0, checked.output
