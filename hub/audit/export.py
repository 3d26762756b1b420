"""Signed exports of the audit trail: a CSV or JSON file plus a manifest of SHA-256 hashes
signed with the hub's export key (Ed25519, created 0600 under `secrets_dir` on first use).

The same signer signs incident evidence packages, so one public key verifies both.
"""

import base64
import contextlib
import csv
import hashlib
import io
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hub.audit.schemas import AuditEntryRead, SignedManifest, StoredEntry
from hub.kit.keyfiles import write_private_key

KEY_FILE = "export-signing.pem"
CSV_COLUMNS = (
    "seq",
    "at",
    "actor",
    "action",
    "target",
    "detail",
    "decision_id",
    "trace_id",
    "leaf_index",
    "leaf_hash",
)


class ExportSigner:
    """Signs and verifies export manifests with the hub's export key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = hashlib.sha256(raw).hexdigest()[:16]
        self.public_pem = (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    @classmethod
    def from_dir(cls, secrets_dir: str) -> "ExportSigner":
        """The signer whose key lives in `secrets_dir` (created there on first use; racing
        processes all end up with the file that was written first)."""
        return cls(load_or_create_key(Path(secrets_dir) / KEY_FILE))

    def sign(self, files: Mapping[str, bytes], *, kind: str, at: datetime) -> SignedManifest:
        """A manifest naming each file's SHA-256 and size, signed."""
        document = {
            "kind": kind,
            "created_at": at.isoformat(),
            "key_id": self.key_id,
            "files": {
                name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                for name, data in sorted(files.items())
            },
        }
        manifest = msgspec.json.encode(document, order="sorted").decode()
        signature = self._key.sign(manifest.encode())
        return SignedManifest(
            manifest=manifest,
            signature=base64.b64encode(signature).decode(),
            key_id=self.key_id,
            public_key=self.public_pem,
        )


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 key kept in `path` (created 0600 on first use; racing processes all end up
    with the file that was written first)."""
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            write_private_key(path, Ed25519PrivateKey.generate())
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def verify_manifest(
    signed: SignedManifest, files: Mapping[str, bytes], *, trusted_pem: str
) -> list[str]:
    """Every problem with a signed manifest and the files it names (empty: all good)."""
    digests = {name: _sha256(data) for name, data in files.items()}
    return verify_manifest_digests(signed, digests, trusted_pem=trusted_pem)


def verify_manifest_digests(
    signed: SignedManifest, digests: Mapping[str, str], *, trusted_pem: str
) -> list[str]:
    """`verify_manifest` given each file's SHA-256 (hex), so files can be hashed as streams.

    The signature is checked with `trusted_pem` (the hub's key), not the key the package
    carries: a forger could ship their own.
    """
    problems: list[str] = []
    key = serialization.load_pem_public_key(trusted_pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        return ["the trusted key is not Ed25519"]
    try:
        key.verify(base64.b64decode(signed.signature), signed.manifest.encode())
    except (InvalidSignature, ValueError):
        problems.append("the manifest signature does not verify with the hub's export key")
    try:
        listed = msgspec.json.decode(signed.manifest, type=dict[str, object]).get("files", {})
    except msgspec.DecodeError:
        return [*problems, "the manifest is not JSON"]
    if not isinstance(listed, dict):
        return [*problems, "the manifest lists no files"]
    for name, facts in sorted(listed.items()):
        digest = digests.get(name)
        if digest is None:
            problems.append(f"{name} is listed but missing")
        elif not isinstance(facts, dict) or facts.get("sha256") != digest:
            problems.append(f"{name} does not match its SHA-256 in the manifest")
    problems.extend(
        f"{name} is not listed in the manifest" for name in sorted(set(digests) - set(listed))
    )
    return problems


def entry_read(entry: StoredEntry) -> AuditEntryRead:
    """An entry as the API shows it."""
    return AuditEntryRead(
        seq=entry.seq,
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        target=entry.target,
        detail=entry.detail,
        decision_id=entry.decision_id,
        trace_id=entry.trace_id,
        leaf_index=entry.leaf_index,
        leaf_hash=None if entry.leaf_hash is None else entry.leaf_hash.hex(),
    )


def render(entries: list[AuditEntryRead], *, fmt: str) -> bytes:
    """Entries as CSV (one row each, detail as JSON) or as a JSON array."""
    if fmt == "json":
        return msgspec.json.format(msgspec.json.encode(entries), indent=2)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for e in entries:
        writer.writerow(
            [
                e.seq,
                e.at.isoformat(),
                e.actor,
                e.action,
                e.target,
                msgspec.json.encode(e.detail, order="sorted").decode(),
                e.decision_id or "",
                e.trace_id or "",
                "" if e.leaf_index is None else e.leaf_index,
                e.leaf_hash or "",
            ]
        )
    return buffer.getvalue().encode()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
