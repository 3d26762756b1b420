"""Reading and writing OPA bundle archives (`.tar.gz`) safely and reproducibly.

An upload is untrusted bytes. Nothing is ever extracted to disk: the archive is inflated in
bounded chunks (a gzip bomb stops at the limit, not at the end of memory), every tar entry is
checked before it is read, and only regular files with plain relative names are kept. A name
with one leading `/` is accepted because `opa build` writes every entry that way (the bundle
root); anything that would climb out of the bundle or alias another entry is refused.

`build_archive` and `write_archive` write the same bytes for the same files (sorted names,
fixed mtime, owner and mode, no gzip timestamp), so a bundle's SHA-256 names its content.
"""

import gzip
import hashlib
import io
import re
import tarfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import msgspec

from hub.policy.bundles.errors import BundleError

MANIFEST = ".manifest"
SIGNATURES = ".signatures.json"
MIB = 1024 * 1024
_CHUNK = 64 * 1024
_TAR_ENTRY_OVERHEAD = 4096  # a header, a long-name or PAX header and padding
_MAX_NAME = 512
_DRIVE = re.compile(r"^[A-Za-z]:")
# Revisions name rows and URLs, so they stay short and free of separators.
REVISION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:+@-]{0,127}$"
_REVISION = re.compile(REVISION_PATTERN)

BundleFiles = dict[str, bytes]


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchiveLimits:
    """How much an archive may hold; every limit is checked before the bytes are kept."""

    max_archive_bytes: int = 8 * MIB
    max_files: int = 1000
    max_file_bytes: int = 8 * MIB
    max_total_bytes: int = 32 * MIB

    @classmethod
    def for_archive(cls, max_archive_bytes: int) -> "ArchiveLimits":
        """Limits scaled to an archive size limit (the unpacked total may be 4x larger)."""
        return cls(
            max_archive_bytes=max_archive_bytes,
            max_file_bytes=max(max_archive_bytes, MIB),
            max_total_bytes=max(4 * max_archive_bytes, 32 * MIB),
        )


class BundleManifest(msgspec.Struct, frozen=True, kw_only=True):
    """The `.manifest` fields bundle management relies on (the file is kept as it came)."""

    revision: str
    roots: list[str] = msgspec.field(default_factory=lambda: [""])


class BundleArchive(msgspec.Struct, frozen=True, kw_only=True):
    """A checked archive: its files by relative path, its manifest, the SHA-256 of its bytes."""

    files: BundleFiles
    manifest: BundleManifest
    sha256: str


def read_archive(data: bytes, *, limits: ArchiveLimits | None = None) -> BundleArchive:
    """Unpack and check an uploaded bundle; `BundleError` names the first problem found."""
    limits = limits or ArchiveLimits()
    if len(data) > limits.max_archive_bytes:
        raise BundleError(
            f"the archive is {len(data)} bytes; the limit is {limits.max_archive_bytes}",
            code="bundle_too_large",
        )
    stream_limit = limits.max_total_bytes + (limits.max_files + 3) * _TAR_ENTRY_OVERHEAD
    files = _untar(_gunzip(data, limit=stream_limit), limits)
    _check_contents(files)
    return BundleArchive(
        files=files, manifest=parse_manifest(files), sha256=hashlib.sha256(data).hexdigest()
    )


def parse_manifest(files: Mapping[str, bytes]) -> BundleManifest:
    """The bundle's `.manifest`, which must exist and name a usable revision."""
    raw = files.get(MANIFEST)
    if raw is None:
        raise BundleError(
            "the bundle has no .manifest; it must name the bundle's revision",
            code="bundle_manifest_invalid",
        )
    try:
        manifest = msgspec.json.decode(raw, type=BundleManifest)
    except msgspec.DecodeError as exc:
        raise BundleError(
            f".manifest is not valid: {exc}", code="bundle_manifest_invalid"
        ) from None
    if not _REVISION.match(manifest.revision):
        raise BundleError(
            f".manifest revision {manifest.revision!r} must match {REVISION_PATTERN}",
            code="bundle_manifest_invalid",
        )
    return manifest


def build_archive(directory: Path) -> bytes:
    """A reproducible archive of a bundle folder (hidden files other than `.manifest` and
    `.signatures.json` are left out; a symbolic link is refused)."""
    return write_archive(read_bundle_dir(directory))


def read_bundle_dir(directory: Path) -> BundleFiles:
    """The files of a bundle folder by relative path."""
    if not directory.is_dir():
        raise BundleError(f"{directory} is not a folder", code="bundle_not_found")
    files: BundleFiles = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if path.is_symlink():
            raise BundleError(f"{relative} is a symbolic link", code="bundle_path_unsafe")
        if path.is_file() and not _hidden(relative):
            files[relative] = path.read_bytes()
    return files


def write_archive(files: Mapping[str, bytes]) -> bytes:
    """A reproducible `.tar.gz` of these files: same files, same bytes."""
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(safe_name(name))
            info.size, info.mtime, info.mode = len(files[name]), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(files[name]))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", fileobj=out, mode="wb", compresslevel=9, mtime=0) as gz:
        gz.write(tar_bytes.getvalue())
    return out.getvalue()


def safe_name(raw: str) -> str:
    """A tar entry name as a plain relative path, or `bundle_path_unsafe`."""
    name = raw[1:] if raw.startswith("/") else raw  # opa build roots every entry at "/"
    while name.startswith("./"):
        name = name[2:]
    problem = _name_problem(raw, name)
    if problem is not None:
        raise BundleError(f"unsafe entry name {raw!r}: {problem}", code="bundle_path_unsafe")
    return name


def _name_problem(raw: str, name: str) -> str | None:
    if not name or len(raw) > _MAX_NAME:
        return "empty or too long"
    if any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) < 0xE000 for c in raw):
        return "names must be UTF-8 text without control characters"
    if "\\" in raw:
        return "backslashes are not allowed"
    if name.startswith("/") or _DRIVE.match(name):
        return "absolute paths are not allowed"
    if any(part in ("", ".", "..") for part in name.split("/")):
        return "empty, '.' and '..' segments are not allowed"
    return None


def _hidden(relative: str) -> bool:
    return relative not in (MANIFEST, SIGNATURES) and any(
        part.startswith(".") for part in relative.split("/")
    )


def _gunzip(data: bytes, *, limit: int) -> bytes:
    """Inflate every gzip member in chunks, stopping as soon as the output passes `limit`."""
    if not data.startswith(b"\x1f\x8b"):
        raise BundleError("the body is not a gzip stream", code="bundle_malformed")
    out = bytearray()
    rest = data
    try:
        while rest:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            tail = rest
            while not inflater.eof:
                chunk = inflater.decompress(tail, _CHUNK)
                if not chunk and inflater.unconsumed_tail == tail:
                    raise BundleError("the gzip stream is truncated", code="bundle_malformed")
                tail = inflater.unconsumed_tail
                out += chunk
                if len(out) > limit:
                    raise BundleError(
                        f"the archive unpacks to more than {limit} bytes",
                        code="bundle_too_large",
                    )
            rest = inflater.unused_data
            if not rest.startswith(b"\x1f\x8b") and not rest.strip(b"\0"):
                break  # zero padding after the last member, as some tools write
    except zlib.error as exc:
        raise BundleError(f"the gzip stream is corrupt: {exc}", code="bundle_malformed") from None
    return bytes(out)


def _untar(raw: bytes, limits: ArchiveLimits) -> BundleFiles:
    files: BundleFiles = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for count, member in enumerate(tar, start=1):
                if count > limits.max_files:
                    raise BundleError(
                        f"the archive holds more than {limits.max_files} entries",
                        code="bundle_too_large",
                    )
                name = _checked_member(member, limits)
                if name is None:
                    continue
                if name in files:
                    raise BundleError(f"{name} appears twice", code="bundle_path_unsafe")
                total += member.size
                if total > limits.max_total_bytes:
                    raise BundleError(
                        f"the files total more than {limits.max_total_bytes} bytes",
                        code="bundle_too_large",
                    )
                files[name] = _read_member(tar, member, name)
    except (tarfile.TarError, EOFError) as exc:
        raise BundleError(f"the tar stream is not valid: {exc}", code="bundle_malformed") from None
    return files


def _checked_member(member: tarfile.TarInfo, limits: ArchiveLimits) -> str | None:
    """The member's safe name, or None for a directory entry (folders are implied)."""
    if member.isdir():
        if member.name.strip("/") not in ("", "."):
            safe_name(member.name)
        return None
    name = safe_name(member.name)
    if not member.isreg() or member.issparse():
        kind = "link" if member.issym() or member.islnk() else "special file"
        raise BundleError(
            f"{name} is a {kind}; only regular files are allowed", code="bundle_path_unsafe"
        )
    if member.size > limits.max_file_bytes:
        raise BundleError(
            f"{name} is {member.size} bytes; the limit is {limits.max_file_bytes}",
            code="bundle_too_large",
        )
    return name


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, name: str) -> bytes:
    handle = tar.extractfile(member)
    data = b"" if handle is None else handle.read(member.size + 1)
    if len(data) != member.size:
        raise BundleError(f"{name} is truncated", code="bundle_malformed")
    return data


def _check_contents(files: BundleFiles) -> None:
    """Text and JSON files must be what their names say (rego is UTF-8, data is JSON)."""
    for name, data in files.items():
        base = name.rsplit("/", 1)[-1]
        if name.endswith(".rego"):
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                raise BundleError(f"{name} is not UTF-8 text", code="bundle_malformed") from None
        elif base in ("data.yaml", "data.yml"):
            raise BundleError(
                f"{name}: YAML data is not supported; use data.json", code="bundle_malformed"
            )
        elif base in ("data.json", SIGNATURES):
            try:
                msgspec.json.decode(data)
            except msgspec.DecodeError as exc:
                raise BundleError(
                    f"{name} is not valid JSON: {exc}", code="bundle_malformed"
                ) from None
