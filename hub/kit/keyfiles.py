"""Writing private keys to disk the one safe way: PKCS#8 PEM, mode 0600, never overwriting."""

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def write_private_key(path: Path, key: Ed25519PrivateKey | EllipticCurvePrivateKey) -> str:
    """Write `key` to `path` (created 0600; an existing file is an error); return the public
    key as SubjectPublicKeyInfo PEM."""
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return public.decode()


def load_or_create_secret(path: Path, *, size: int = 32) -> bytes:
    """A random secret kept in `path` (created 0600 on first use, then only read). The file
    appears complete or not at all (written aside, then hard-linked into place), so processes
    racing to create it all end up reading the one that won."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        aside = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(os.urandom(size))
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
        finally:
            aside.unlink()
    data = path.read_bytes()
    if len(data) < 16:
        raise ValueError(f"{path} holds fewer than 16 bytes; delete it to create a new secret")
    return data
