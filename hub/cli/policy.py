"""`hub policy`: test, build, sign and push policy bundles from a shell.

The usual round: `hub policy keygen --out admin.pem` once (give the printed public key to the
hub's verify-keys file), then for each change `hub policy build policies -o b.tar.gz`,
`hub policy sign b.tar.gz --key admin.pem --key-id admin-2026` and
`hub policy push b.signed.tar.gz --url https://hub --token ... --activate`.
None of these commands needs the database; `push` talks to the hub over HTTP.
"""

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeVar

import click
import httpx
import msgspec

from hub.cli.common import emit
from hub.kit.errors import HubError
from hub.policy.bundles.archive import (
    SIGNATURES,
    build_archive,
    read_archive,
    write_archive,
)
from hub.policy.bundles.keys import generate_key_pem
from hub.policy.bundles.schemas import BundleRead, RegoTestSummary, UploadResult
from hub.policy.bundles.signing import sign_bundle

if TYPE_CHECKING:
    from hub.policy.bundles.impact import ImpactReport

T = TypeVar("T")
S = TypeVar("S", bound=msgspec.Struct)
ArchivePath = click.Path(exists=True, dir_okay=False, path_type=Path)
BundleDir = click.Path(exists=True, file_okay=False, path_type=Path)


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of a problem+json answer the CLI shows."""

    status: int = 0
    code: str = ""
    title: str = ""
    detail: str | None = None
    failed_tests: list[str] = []


@click.group("policy")
def policy_group() -> None:
    """Policy bundles: run their tests, build, sign and push them to the hub."""


@policy_group.command("test")
@click.argument("directory", default="policies", type=BundleDir)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def test(directory: Path, as_json: bool) -> None:
    """Run the Rego tests of the bundle in DIRECTORY; exit 1 when any fails."""
    summary = _run_tests(directory)
    emit(summary, as_json=as_json, text=lambda: _report(summary))
    sys.exit(0 if _ok(summary) else 1)


@policy_group.command("build")
@click.argument("directory", default="policies", type=BundleDir)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--skip-tests", is_flag=True, help="Build without running the tests first.")
def build(directory: Path, output: Path, skip_tests: bool) -> None:
    """Build a reproducible bundle archive of DIRECTORY (tests run first)."""
    if not skip_tests:
        summary = _run_tests(directory)
        if not _ok(summary):
            click.echo(_report(summary), err=True)
            _fail("tests failed; nothing was built")
    data = _guarded(lambda: build_archive(directory))
    bundle = _guarded(lambda: read_archive(data))
    output.write_bytes(data)
    click.echo(
        f"wrote {output}: revision {bundle.manifest.revision}, {len(bundle.files)} files, "
        f"sha256 {bundle.sha256}"
    )


@policy_group.command("sign")
@click.argument("archive", type=ArchivePath)
@click.option("--key", "key_file", type=ArchivePath, required=True, help="PEM private key.")
@click.option("--key-id", required=True, help="Key id the hub knows the public key by.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Signed archive (default: NAME.signed.tar.gz beside ARCHIVE).",
)
def sign(archive: Path, key_file: Path, key_id: str, output: Path | None) -> None:
    """Add .signatures.json to ARCHIVE and write the signed archive."""
    bundle = _guarded(lambda: read_archive(archive.read_bytes()))
    files = {name: data for name, data in bundle.files.items() if name != SIGNATURES}
    signature = _guarded(
        lambda: sign_bundle(files, private_key_pem=key_file.read_bytes(), key_id=key_id)
    )
    target = output or archive.with_name(archive.name.removesuffix(".tar.gz") + ".signed.tar.gz")
    target.write_bytes(write_archive({**files, SIGNATURES: signature}))
    click.echo(f"signed {len(files)} files with key {key_id}: wrote {target}")


@policy_group.command("keygen")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the private key (0600; never overwritten).",
)
def keygen(out: Path) -> None:
    """Generate an ES256 signing key; print its public key for the hub's keys file."""
    if out.exists():
        raise click.UsageError(f"{out} exists; refusing to overwrite a private key")
    click.echo(generate_key_pem(out), nl=False)
    click.echo(f"private key written to {out}", err=True)


@policy_group.command("push")
@click.argument("archive", type=ArchivePath)
@click.option("--url", required=True, envvar="HUB_URL", help="Base URL of the hub API.")
@click.option("--token", required=True, envvar="HUB_TOKEN", help="Admin bearer token.")
@click.option("--activate", is_flag=True, help="Activate the bundle once it is stored.")
@click.option("--json", "as_json", is_flag=True, help="Print the hub's answers as JSON.")
def push(archive: Path, url: str, token: str, activate: bool, as_json: bool) -> None:
    """Upload ARCHIVE to the hub (and activate it with --activate)."""
    base = url.rstrip("/") + "/v1/admin/policy"
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60.0) as client:
        raw = _call(client, f"{base}/bundles", content=archive.read_bytes())
        uploaded = _decode(raw, UploadResult)
        revision = uploaded.bundle.revision
        state = "stored" if uploaded.created else "already stored"
        _say(raw, as_json, f"{state}: {revision} ({uploaded.bundle.status})")
        if activate:
            raw = _call(client, f"{base}/bundles/{revision}/activate")
            activated = _decode(raw, BundleRead)
            _say(raw, as_json, f"activated {revision} (by {activated.activated_by})")


@policy_group.command("impact")
@click.argument("revision")
@click.option("--hours", type=click.IntRange(1, 24 * 30), default=24, show_default=True)
@click.option(
    "--limit", type=click.IntRange(1, 20_000), default=2000, show_default=True,
    help="Newest decisions replayed at most.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def impact(revision: str, hours: int, limit: int, as_json: bool) -> None:
    """What activating the uploaded bundle REVISION would change: the decisions of the last
    --hours replayed under it (nothing is activated or logged)."""
    from hub.cli.common import run_with_services
    from hub.kit.clock import utcnow
    from hub.policy.bundles.impact import bundle_impact

    report = run_with_services(
        lambda services: bundle_impact(
            services.db, revision, now=utcnow(), hours=hours, limit=limit
        )
    )
    emit(report, as_json=as_json, text=lambda: _impact_text(report))


def _impact_text(report: "ImpactReport") -> str:
    """Counts by entrypoint and recipient, then the changed decisions."""
    from hub.cli.common import table

    head = (
        f"{report.revision}: {report.changed} of {report.replayed} decisions since "
        f"{report.since:%Y-%m-%d %H:%M} UTC would change ({report.note})"
    )
    parts = [head]
    for title, counts in (("entrypoint", report.by_entrypoint), ("recipient", report.by_recipient)):
        rows: list[list[object]] = [[c.key, c.replayed, c.changed] for c in counts]
        parts += ["", table([title, "replayed", "changed"], rows)]
    if report.changes:
        changed: list[list[object]] = [
            [c.decision_id, c.entrypoint, c.recipient, f"{c.before} -> {c.after}",
             ", ".join(d.path for d in c.differences)]
            for c in report.changes
        ]  # fmt: skip
        parts += ["", table(["decision", "entrypoint", "recipient", "outcome", "changed"], changed)]
    return "\n".join(parts)


def _run_tests(directory: Path) -> RegoTestSummary:
    from hub.policy.bundle import load_bundle_dir
    from hub.policy.bundles.testing import run_bundle_tests

    return _guarded(lambda: run_bundle_tests(load_bundle_dir(directory)))


def _ok(summary: RegoTestSummary) -> bool:
    return summary.error is None and summary.failed == 0


def _report(summary: RegoTestSummary) -> str:
    if summary.error is not None:
        return f"bundle does not load: {summary.error}"
    lines = [
        f"{'PASS' if t.passed else 'FAIL'} {t.name}" + (f": {t.message}" if t.message else "")
        for t in summary.tests
    ]
    lines.append(f"{summary.passed} passed, {summary.failed} failed")
    return "\n".join(lines)


def _call(client: httpx.Client, url: str, *, content: bytes | None = None) -> bytes:
    """POST to the hub; a problem answer or a network error ends the command."""
    headers = {"Content-Type": "application/gzip"} if content is not None else {}
    try:
        response = client.post(url, content=content, headers=headers)
    except httpx.HTTPError as exc:
        _fail(f"cannot reach {url}: {exc}")
    if response.status_code >= 400:
        _fail(_problem(response))
    return response.content


def _problem(response: httpx.Response) -> str:
    try:
        problem = msgspec.json.decode(response.content, type=Problem)
    except msgspec.DecodeError:
        return f"hub answered {response.status_code}: {response.text[:300]}"
    text = f"hub answered {problem.status} {problem.code}: {problem.detail or problem.title}"
    if problem.failed_tests:
        text += "\nfailing tests:\n" + "\n".join(f"  {name}" for name in problem.failed_tests)
    return text


def _decode(raw: bytes, kind: type[S]) -> S:
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.DecodeError as exc:
        _fail(f"unexpected answer from the hub: {exc}")


def _say(raw: bytes, as_json: bool, text: str) -> None:
    click.echo(raw.decode() if as_json else text)


def _guarded(work: Callable[[], T]) -> T:
    try:
        return work()
    except HubError as exc:
        _fail(exc.detail)
    except OSError as exc:
        _fail(str(exc))


def _fail(message: str) -> NoReturn:
    click.echo(f"hub: {message}", err=True)
    sys.exit(1)
