"""`hub nodes`: the edge-node registry."""

import os
from collections import Counter
from pathlib import Path
from uuid import UUID

import click
import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.cli.common import emit, run_with_services
from hub.identity import (
    CameraCreate,
    CameraRead,
    NodeCreate,
    NodeRead,
    add_camera,
    add_node,
    list_cameras,
    list_nodes,
    remove_camera,
    revoke_node,
)
from hub.kit.keyfiles import write_private_key
from hub.runtime import Services

ACTOR = "cli:" + os.environ.get("USER", "operator")


@click.group("nodes")
def nodes() -> None:
    """Register, list and revoke edge nodes (each signs its uploads with an Ed25519 key) and
    the cameras each owns."""


@nodes.command("add")
@click.argument("name")
@click.option(
    "--public-key",
    "public_key_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM or base64 Ed25519 public key of the node.",
)
@click.option(
    "--generate-key",
    "key_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Generate a key pair here instead; write the private key (0600) to this file.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the node as JSON.")
def add(name: str, public_key_file: Path | None, key_out: Path | None, as_json: bool) -> None:
    """Register edge node NAME; prints its id, which is the node's signature keyid."""
    if (public_key_file is None) == (key_out is None):
        raise click.UsageError("give exactly one of --public-key and --generate-key")
    if key_out is not None and key_out.exists():
        raise click.UsageError(f"{key_out} exists; refusing to overwrite a private key")
    # A generated key is written beside its final name and moved there only once the node is
    # registered, so a refused registration leaves no orphan key behind.
    partial = None if key_out is None else key_out.with_name(key_out.name + ".partial")
    public_pem = generate_key_file(partial) if partial else _read_text(public_key_file)

    async def work(services: Services) -> NodeRead:
        return await add_node(
            services.db, NodeCreate(name=name, public_key=public_pem), actor=ACTOR
        )

    registered = False
    try:
        node = run_with_services(work)
        registered = True
    finally:
        if partial is not None and key_out is not None:
            _settle_key(partial, key_out, keep=registered)
    emit(
        node,
        as_json=as_json,
        text=lambda: f"registered {node.name}: keyid {node.id} ({node.key_fingerprint})",
    )


@nodes.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_(as_json: bool) -> None:
    """List registered edge nodes and how many cameras each owns (a node with none has every
    event rejected: register them with `hub nodes cameras add`)."""

    async def work(services: Services) -> tuple[list[NodeRead], list[CameraRead]]:
        return await list_nodes(services.db), await list_cameras(services.db)

    found, owned = run_with_services(work)
    counts = Counter(c.node_id for c in owned)
    emit(found, as_json=as_json, text=lambda: _table(found, counts))


@nodes.command("revoke")
@click.argument("node")
@click.option("--reason", required=True, help="Why (kept in the registry and the audit log).")
@click.option("--json", "as_json", is_flag=True, help="Print the node as JSON.")
def revoke(node: str, reason: str, as_json: bool) -> None:
    """Revoke NODE (id or name): its next request is refused."""

    async def work(services: Services) -> NodeRead:
        return await revoke_node(services.db, node, reason=reason, actor=ACTOR)

    done = run_with_services(work)
    emit(done, as_json=as_json, text=lambda: f"revoked {done.name} ({done.id})")


@nodes.group("cameras")
def cameras() -> None:
    """Register, list and remove the cameras each node owns (and their jurisdictions).

    A node's events are accepted only for cameras registered to it; their records lie in the
    camera's registered jurisdiction, whatever the event says."""


@cameras.command("add")
@click.argument("node")
@click.argument("camera_id")
@click.option("--jurisdiction", required=True, help="Jurisdiction the camera lies in.")
@click.option("--description", default="", help="Where it is, for people (optional).")
@click.option("--json", "as_json", is_flag=True, help="Print the camera as JSON.")
def cameras_add(
    node: str, camera_id: str, jurisdiction: str, description: str, as_json: bool
) -> None:
    """Register CAMERA_ID to NODE (id or name); adding it again unchanged is a no-op."""
    create = _camera_create(camera_id, jurisdiction, description)

    async def work(services: Services) -> CameraRead:
        return await add_camera(services.db, node, create, actor=ACTOR)

    done = run_with_services(work)
    emit(
        done,
        as_json=as_json,
        text=lambda: (
            f"camera {done.camera_id} registered to {done.node_name} ({done.jurisdiction})"
        ),
    )


@cameras.command("list")
@click.argument("node", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def cameras_list(node: str | None, as_json: bool) -> None:
    """List registered cameras: every node's, or NODE's (id or name)."""

    async def work(services: Services) -> list[CameraRead]:
        return await list_cameras(services.db, node)

    found = run_with_services(work)
    emit(found, as_json=as_json, text=lambda: _camera_table(found))


@cameras.command("remove")
@click.argument("node")
@click.argument("camera_id")
@click.option("--json", "as_json", is_flag=True, help="Print the removed camera as JSON.")
def cameras_remove(node: str, camera_id: str, as_json: bool) -> None:
    """Unregister CAMERA_ID from NODE: its events are rejected within 5 s (API processes keep
    a node's cameras that long)."""

    async def work(services: Services) -> CameraRead:
        return await remove_camera(services.db, node, camera_id, actor=ACTOR)

    done = run_with_services(work)
    emit(
        done, as_json=as_json, text=lambda: f"camera {done.camera_id} removed from {done.node_name}"
    )


def _camera_create(camera_id: str, jurisdiction: str, description: str) -> CameraCreate:
    """Validate the options as the API would (same Struct), naming the bad one."""
    try:
        return msgspec.convert(
            {"camera_id": camera_id, "jurisdiction": jurisdiction, "description": description},
            CameraCreate,
        )
    except msgspec.ValidationError as exc:
        raise click.BadParameter(str(exc)) from None


def _camera_table(found: list[CameraRead]) -> str:
    if not found:
        return "no cameras registered (add: hub nodes cameras add NODE CAMERA --jurisdiction J)"
    lines = [f"{'CAMERA':24}  {'NODE':24}  {'JURISDICTION':14}  DESCRIPTION"]
    lines += [
        f"{c.camera_id:24}  {c.node_name:24}  {c.jurisdiction:14}  {c.description}" for c in found
    ]
    return "\n".join(lines)


def generate_key_file(key_out: Path) -> str:
    """Generate an Ed25519 key pair, write the private key (0600, never overwriting); return
    the public key as PEM."""
    key = Ed25519PrivateKey.generate()
    return write_private_key(key_out, key)


def _read_text(path: Path | None) -> str:
    if path is None:
        raise click.UsageError("--public-key is required")
    return path.read_text()


def _settle_key(partial: Path, final: Path, *, keep: bool) -> None:
    if keep:
        partial.rename(final)
    else:
        partial.unlink(missing_ok=True)


def _table(found: list[NodeRead], cameras: Counter[UUID]) -> str:
    if not found:
        return "no edge nodes registered (add one with: hub nodes add NAME --generate-key FILE)"
    lines = [f"{'ID':36}  {'NAME':24}  {'STATUS':8}  {'CAMERAS':7}  FINGERPRINT"]
    lines += [
        f"{n.id!s:36}  {n.name:24}  {n.status:8}  {cameras[n.id]:<7}  {n.key_fingerprint}"
        for n in found
    ]
    if any(n.status == "active" and not cameras[n.id] for n in found):
        lines.append("(a node with 0 cameras has every event rejected: hub nodes cameras add)")
    return "\n".join(lines)
