"""Checkpoints: the hub's signed statements "the audit tree had this size and root at this
time", the key that signs them (Ed25519, `audit-checkpoint.pem` under `secrets_dir`, its
public half served at `/v1/audit/checkpoint-key`), and pushing them to an outside witness.

A checkpoint kept only in the database can be deleted with the entries it covers; one the
witness holds cannot, which is what makes a cut tail detectable by someone the hub does not
control.
"""

import asyncio
import base64
import hashlib
import os
from datetime import datetime
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hub.audit.export import load_or_create_key
from hub.audit.rules import CHECKPOINT_ORIGIN, checkpoint_note
from hub.audit.schemas import Checkpoint, CheckpointKey

KEY_FILE = "audit-checkpoint.pem"
WITNESS_TIMEOUT_SECONDS = 5.0


class CheckpointSigner:
    """Signs checkpoints with the hub's checkpoint key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public = CheckpointKey(
            key_id=key_id_of(key.public_key()),
            public_key=key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode(),
        )

    @classmethod
    def from_dir(cls, secrets_dir: str) -> "CheckpointSigner":
        """The signer whose key lives in `secrets_dir` (created there on first use)."""
        return cls(load_or_create_key(Path(secrets_dir) / KEY_FILE))

    def sign(self, *, size: int, root: bytes, at: datetime) -> Checkpoint:
        """A signed checkpoint of the tree of `size` leaves with this root."""
        note = checkpoint_note(size=size, root=root, signed_at=at)
        return Checkpoint(
            tree_size=size,
            root_hash=root.hex(),
            signed_at=at,
            key_id=self.public.key_id,
            signature=base64.b64encode(self._key.sign(note.encode())).decode(),
            note=note,
        )


def key_id_of(key: Ed25519PublicKey) -> str:
    """The first 16 hex digits of the SHA-256 of the raw public key."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_in(secrets_dir: str) -> CheckpointKey | None:
    """The checkpoint key's public half, if the key exists (verifiers never create one)."""
    path = Path(secrets_dir) / KEY_FILE
    return CheckpointSigner.from_dir(secrets_dir).public if path.exists() else None


def checkpoint_problem(checkpoint: Checkpoint, *, public_pem: str) -> str | None:
    """Why this checkpoint cannot be trusted with this key, or None when it can: the
    signature must verify over the note, and the note must say what the fields say."""
    key = serialization.load_pem_public_key(public_pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        return "the checkpoint key is not Ed25519"
    try:
        key.verify(base64.b64decode(checkpoint.signature), checkpoint.note.encode())
    except (InvalidSignature, ValueError):
        return f"checkpoint of size {checkpoint.tree_size} is not signed by the checkpoint key"
    expected = checkpoint_note(
        size=checkpoint.tree_size,
        root=bytes.fromhex(checkpoint.root_hash),
        signed_at=checkpoint.signed_at,
    )
    if checkpoint.note != expected or not checkpoint.note.startswith(CHECKPOINT_ORIGIN):
        return "the checkpoint's fields do not match its signed note"
    return None


def read_witness_checkpoints(path: Path) -> list[Checkpoint]:
    """Every checkpoint in a witness file (one JSON checkpoint per line), in the order it was
    handed them, or the one a JSON file holds."""
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{path} holds no checkpoint")
    try:
        return [msgspec.json.decode(line, type=Checkpoint) for line in lines]
    except msgspec.DecodeError:
        return [msgspec.json.decode(path.read_bytes(), type=Checkpoint)]


async def append_to_witness_file(path: Path, checkpoints: list[Checkpoint]) -> None:
    """Hand checkpoints to a file witness: each appended as one JSON line, flushed to disk.
    Raises OSError on failure."""
    lines = b"".join(msgspec.json.encode(c) + b"\n" for c in checkpoints)
    await asyncio.to_thread(_append, path, lines)


def is_url_witness(witness: str) -> bool:
    """A verifying witness reached over HTTP (`hub audit witness`), else a file."""
    return witness.startswith(("http://", "https://"))


def _append(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
