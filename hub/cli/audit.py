"""`hub audit`: check the log against a signed checkpoint, seal now, list checkpoints, prove
consistency, check an evidence package's proofs offline, and prune below a checkpoint."""

import io
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import msgspec

from hub.audit.schemas import CheckpointKey, LogReport, PruneReport
from hub.cli.common import emit, run_with_services, settings_or_exit
from hub.runtime import Services

PROOFS_FILE = "audit_proofs.json"


@click.group()
def audit() -> None:
    """The audit log: a Merkle tree with signed checkpoints (ADR 0011)."""


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Check against the checkpoints in this file (a witness file: every line; the last "
    "anchors the check) instead of the newest one in the database.",
)
@click.option(
    "--key",
    "key_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Checkpoint public key (PEM); default: the hub's key under HUB_SECRETS_DIR.",
)
def audit_verify(as_json: bool, checkpoint_file: Path | None, key_file: Path | None) -> None:
    """Recompute every entry and check the tree against signed checkpoints; exit 1 and name
    the first altered or missing entry, a cut tail or a rewritten tree (also one sealed again
    after a witness was handed checkpoints of the log before)."""
    from hub.audit import public_key_in, verify_log
    from hub.audit.checkpoints import read_witness_checkpoints

    settings = settings_or_exit()
    trusted = read_witness_checkpoints(checkpoint_file) if checkpoint_file else []
    key = _key_from(key_file) if key_file else public_key_in(settings.secrets_dir)

    async def work(services: Services) -> LogReport:
        return await verify_log(services.db.pool, key=key, trusted=trusted)

    report = run_with_services(work)
    emit(report, as_json=as_json, text=lambda: _verify_text(report))
    sys.exit(0 if report.ok else 1)


def _verify_text(report: LogReport) -> str:
    """The one-line summary of a verification."""
    if not report.ok:
        return f"audit log BROKEN: {report.problem}"
    anchor = (
        f"checkpoint of {report.checkpoint_size} signed at {report.checkpoint_at:%Y-%m-%d %H:%M:%S}"
        if report.checkpoint_at is not None
        else "no checkpoint yet"
    )
    earlier = report.checkpoints_matched - 1
    also = f" and {earlier} earlier one(s)" if earlier > 0 else ""
    return (
        f"audit log intact: {report.entries} entries verified against the {anchor}{also}; "
        f"{report.pruned_below} pruned, {report.unsealed} not yet sealed"
    )


@audit.command("seal")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def audit_seal(as_json: bool) -> None:
    """Seal committed entries and sign a checkpoint now (the worker does this on its own)."""
    from hub.audit import Sealer, SealReport

    witness = ""

    async def work(services: Services) -> SealReport:
        nonlocal witness
        witness = services.settings.audit_witness
        return await Sealer.from_settings(services.settings, services.db).run(force_checkpoint=True)

    report = run_with_services(work)
    # With a witness, how many checkpoints reached it: 0 while it is unreachable (the push's
    # error is logged), as runbooks/AuditWitnessBehind.md has an operator check.
    handed = f"; {report.witnessed} handed to the witness" if witness else ""
    emit(
        report,
        as_json=as_json,
        text=lambda: (
            "another sealer is running; try again"
            if report.busy
            else f"sealed {report.sealed}; checkpoint of {report.tree_size} entries signed{handed}"
        ),
    )
    sys.exit(1 if report.busy else 0)


@audit.command("checkpoints")
@click.option("--limit", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON.")
def audit_checkpoints(limit: int, as_json: bool) -> None:
    """The newest signed checkpoints."""
    from hub.audit import Checkpoint
    from hub.audit.service import checkpoints

    async def work(services: Services) -> list[Checkpoint]:
        return await checkpoints(services.db.pool, limit=limit)

    found = run_with_services(work)
    emit(
        found,
        as_json=as_json,
        text=lambda: (
            "\n".join(
                f"{c.signed_at:%Y-%m-%d %H:%M:%S}  size {c.tree_size:>10}  root {c.root_hash}"
                for c in found
            )
            or "no checkpoints yet"
        ),
    )


@audit.command("consistency")
@click.option("--first", type=click.IntRange(min=0), help="Older checkpoint's size.")
@click.option("--second", type=click.IntRange(min=0), help="Newer checkpoint's size.")
@click.option("--json", "as_json", is_flag=True, help="Print the proof as JSON.")
def audit_consistency(first: int | None, second: int | None, as_json: bool) -> None:
    """Prove one checkpoint extends another (default: the newest two); exit 1 if it does not."""
    from hub.audit import consistency_proof
    from hub.audit.schemas import ConsistencyProof

    async def work(services: Services) -> ConsistencyProof:
        return await consistency_proof(services.db.pool, first=first, second=second)

    proof = run_with_services(work)
    emit(
        proof,
        as_json=as_json,
        text=lambda: (
            f"checkpoint of {proof.second} {'extends' if proof.verified else 'does NOT extend'} "
            f"the checkpoint of {proof.first} ({len(proof.path)} hashes)"
        ),
    )
    sys.exit(0 if proof.verified else 1)


@audit.command("verify-proofs")
@click.argument("package", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--key",
    "key_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The hub's checkpoint public key (PEM), obtained independently of the package.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def audit_verify_proofs(package: Path, key_file: Path, as_json: bool) -> None:
    """Offline: check the audit inclusion proofs of an evidence package (.zip) or of its
    audit_proofs.json against the signed checkpoint they carry. No database needed."""
    from hub.audit import ProofBundle, check_bundle

    data = package.read_bytes()
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            data = archive.read(PROOFS_FILE)
    result = check_bundle(msgspec.json.decode(data, type=ProofBundle), trusted=_key_from(key_file))
    emit(
        result,
        as_json=as_json,
        text=lambda: (
            f"{result.proven} entries proven against the signed checkpoint"
            f"{f', {result.pending} not yet covered' if result.pending else ''}"
            if result.ok
            else "proofs do NOT verify: " + "; ".join(result.problems)
        ),
    )
    sys.exit(0 if result.ok else 1)


@audit.command("prune")
@click.option(
    "--older-than-days", type=click.IntRange(min=1), required=True, help="Age of entries to drop."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def audit_prune(older_than_days: int, as_json: bool) -> None:
    """Delete entries older than N days that a signed checkpoint covers (audited)."""
    from hub.audit import prune_entries

    before = datetime.now(UTC) - timedelta(days=older_than_days)

    async def work(services: Services) -> PruneReport:
        return await prune_entries(
            services.db,
            before=before,
            actor="cli:audit",
            witness=services.settings.audit_witness,
        )

    report = run_with_services(work)
    emit(report, as_json=as_json, text=lambda: prune_line(report))


def prune_line(report: PruneReport) -> str:
    """What `hub audit prune` did, and what held it back."""
    line = f"deleted {report.deleted}; entries below {report.pruned_below} are pruned"
    if report.witness_holds is None:
        return line
    return (
        f"{line}; held back for the witness, which holds {report.witness_holds} entries and "
        "lacks later checkpoints (runbooks/AuditWitnessBehind.md)"
    )


@audit.command("witness")
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="File of the checkpoints accepted, one JSON line each (refused ones, with their "
    "proofs, go to STATE.refused). `hub audit verify --checkpoint STATE` reads it.",
)
@click.option(
    "--log-key",
    "key_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The log's checkpoint public key: the PEM in `public_key` of the hub's "
    "GET /v1/audit/checkpoint-key.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=8470, show_default=True, help="Port."
)
def audit_witness(state: Path, key_file: Path, host: str, port: int) -> None:
    """Run a verifying witness of another hub's audit log: POST /add-checkpoint accepts a
    checkpoint only when the log key signed it and a consistency proof shows it extends the
    newest one held (point that hub's HUB_AUDIT_WITNESS at http://HOST:PORT/add-checkpoint)."""
    import uvicorn

    from hub.audit.witness import WitnessState, create_witness_app

    app = create_witness_app(WitnessState(path=state, log_key=_key_from(key_file)))
    click.echo(f"witness on http://{host}:{port}/add-checkpoint, state in {state}", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def _key_from(path: Path) -> CheckpointKey:
    """A checkpoint key from a public key PEM file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from hub.audit.checkpoints import key_id_of

    pem = path.read_text()
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        click.echo(f"hub: {path} is not an Ed25519 public key", err=True)
        sys.exit(2)
    return CheckpointKey(key_id=key_id_of(key), public_key=pem)
