"""Writing private keys to disk the one safe way: PKCS#8 PEM, mode 0600, never overwriting,
in folders only their owner can list (0700)."""

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
    make_private_dirs(path.parent)
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
    tighten_dir(path.parent)
    if not path.exists():
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


def make_private_dirs(folder: Path) -> None:
    """Create `folder` and any missing parents as 0700 (whatever the umask); folders that
    already exist are left as they are (a key may be written next to the user's files)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for level in reversed(missing):
        try:
            level.mkdir(mode=0o700)
        except FileExistsError:
            continue  # another process made it first
        level.chmod(0o700)  # mkdir's mode is masked by the umask


def tighten_dir(folder: Path) -> None:
    """Make the hub's own secrets folder 0700: create it so, or take group and other
    access away from one that exists (best effort: a read-only mounted secret volume is
    protected by whoever mounts it)."""
    make_private_dirs(folder)
    mode = folder.stat().st_mode & 0o777
    if mode & 0o077:
        try:
            folder.chmod(mode & 0o700)
        except OSError:
            return
