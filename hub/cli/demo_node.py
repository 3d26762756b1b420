"""The demo edge node of `hub up`: registered once, recognised by the key kept in `.hub/`."""

import re
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.signing import public_key_pem
from hub.cli.nodes import generate_key_file
from hub.identity import (
    CameraCreate,
    NodeCreate,
    NodeRead,
    active_node_key,
    add_camera,
    add_node,
    list_cameras,
    list_nodes,
    remove_camera,
)
from hub.kit.db import Database

DEMO_NAME = "demo-edge"
ACTOR = "cli:hub-up"
_DEMO_NAMES = re.compile(r"demo-edge(-[0-9]+)?")
_RAW = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
# The demo cameras (the real agent's two, and the synthetic node's three) and where the
# default policy bundle's recipients expect them: ingest accepts only registered cameras.
DEMO_CAMERAS = (
    CameraCreate(camera_id="demo-cam-1", jurisdiction="north", description="demo, north"),
    CameraCreate(camera_id="demo-cam-2", jurisdiction="central", description="demo, central"),
    CameraCreate(camera_id="demo-cam-3", jurisdiction="central", description="demo, central"),
)


class DemoNode(msgspec.Struct, frozen=True, kw_only=True):
    """What `.hub/demo-node.json` holds: the demo node's id and its private key file."""

    node_id: UUID
    key_path: str


async def ensure_demo_node(
    db: Database, *, state_dir: Path, say: Callable[[str], None]
) -> DemoNode | None:
    """The active demo node whose key we hold, registered when there is none; None if stuck.

    The key file is the node's identity; `demo-node.json` just records which node it is.
    An active demo node whose key we lack blocks a new one (it would be a second demo node).
    """
    key_path = state_dir / "demo-node.key"
    key = _read_key(key_path)
    nodes = await list_nodes(db)
    if key is not None:
        found = await _node_with_key(db, nodes, key, hint=_read_record(state_dir))
        if found is not None:
            claimed = await claim_demo_cameras(db, found, nodes=nodes, say=say)
            if claimed:
                say(f"registered demo cameras {claimed}")
            return _save_record(state_dir, DemoNode(node_id=found, key_path=str(key_path)))
    stranded = [n for n in nodes if _DEMO_NAMES.fullmatch(n.name) and n.status == "active"]
    if stranded:
        say(_stranded_message(stranded[0], key_path))
        return None
    public_pem = public_key_pem(key) if key is not None else generate_key_file(key_path)
    create = NodeCreate(name=_free_name(nodes), public_key=public_pem)
    node = await add_node(db, create, actor=ACTOR)
    claimed = await claim_demo_cameras(db, node.id, nodes=nodes, say=say)
    say(
        f"registered demo edge node {node.name} ({node.id}) with cameras {claimed or 'none'}; "
        f"its key is {key_path}"
    )
    return _save_record(state_dir, DemoNode(node_id=node.id, key_path=str(key_path)))


async def claim_demo_cameras(
    db: Database, node_id: UUID, *, nodes: list[NodeRead], say: Callable[[str], None]
) -> str:
    """Register the demo cameras to the demo node, taking them back from a revoked earlier
    demo node; a camera an active node owns is left alone (said, not forced). Returns the
    cameras newly registered, as text ("" when none)."""
    revoked = {n.id for n in nodes if n.status == "revoked"}
    owners = {c.camera_id: c for c in await list_cameras(db)}
    claimed: list[str] = []
    for camera in DEMO_CAMERAS:
        owner = owners.get(camera.camera_id)
        if owner is not None and owner.node_id == node_id:
            continue
        if owner is not None and owner.node_id not in revoked:
            say(f"demo camera {camera.camera_id} belongs to node {owner.node_name}; not taken")
            continue
        if owner is not None:
            await remove_camera(db, str(owner.node_id), camera.camera_id, actor=ACTOR)
        await add_camera(db, str(node_id), camera, actor=ACTOR)
        claimed.append(f"{camera.camera_id} ({camera.jurisdiction})")
    return ", ".join(claimed)


async def _node_with_key(
    db: Database, nodes: list[NodeRead], key: Ed25519PrivateKey, *, hint: UUID | None
) -> UUID | None:
    """The active node (the recorded one first, then demo-named ones) holding `key`."""
    ours = _raw_public(key)
    candidates = [
        n.id
        for n in nodes
        if n.status == "active" and (n.id == hint or _DEMO_NAMES.fullmatch(n.name))
    ]
    candidates.sort(key=lambda node_id: node_id != hint)
    for node_id in candidates:
        public = await active_node_key(db, node_id)
        raw = None if public is None else public.public_bytes(*_RAW)
        if raw == ours:
            return node_id
    return None


def _stranded_message(node: NodeRead, key_path: Path) -> str:
    return (
        f"demo edge node not started: {node.name} ({node.id}) is registered, but {key_path} "
        f"is missing or is not its key. Revoke it (hub nodes revoke {node.name} --reason "
        f'"demo key lost") and run hub up again to register a new one, or use hub up --no-demo.'
    )


def _free_name(nodes: list[NodeRead]) -> str:
    """`demo-edge`, or `demo-edge-N` when earlier (revoked) demo nodes keep the name taken."""
    taken = {n.name for n in nodes}
    number = 1
    name = DEMO_NAME
    while name in taken:
        number += 1
        name = f"{DEMO_NAME}-{number}"
    return name


def _read_key(path: Path) -> Ed25519PrivateKey | None:
    """The private key in `path`, None if there is no file; ValueError if it is not one."""
    if not path.exists():
        return None
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(*_RAW)


def _read_record(state_dir: Path) -> UUID | None:
    """The node id recorded last time, if the record is there and readable."""
    try:
        return msgspec.json.decode(
            (state_dir / "demo-node.json").read_bytes(), type=DemoNode
        ).node_id
    except (OSError, msgspec.DecodeError):
        return None


def _save_record(state_dir: Path, node: DemoNode) -> DemoNode:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "demo-node.json").write_bytes(msgspec.json.encode(node) + b"\n")
    return node
