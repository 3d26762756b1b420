"""Content-addressed blob storage behind a small interface (local disk now, S3 later)."""

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Protocol


class BlobStore(Protocol):
    """Stores immutable blobs under their SHA-256; writing the same blob twice is a no-op."""

    async def put(self, sha256: str, data: bytes) -> str:
        """Store `data` (already verified to hash to `sha256`); return its storage path."""
        ...

    async def exists(self, sha256: str) -> bool:
        """Whether the blob is stored."""
        ...


class LocalBlobStore:
    """Blobs as files `<root>/ab/cd/<sha256>`, written atomically (temp file, fsync, rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str) -> Path:
        """Where a blob lives; two directory levels keep directories small."""
        return self.root / sha256[:2] / sha256[2:4] / sha256

    async def put(self, sha256: str, data: bytes) -> str:
        """Write once; a concurrent or repeated write of the same content is harmless."""
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ValueError("blob does not match its sha256")
        target = self.path_for(sha256)
        if not target.exists():
            _write_atomically(target, data)
        return str(target.relative_to(self.root))

    async def exists(self, sha256: str) -> bool:
        """Whether the file is there."""
        return self.path_for(sha256).exists()


def _write_atomically(target: Path, data: bytes) -> None:
    # Small files (a snapshot is tens of KiB): synchronous I/O is cheaper than a thread hop.
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
