"""Reading an OPA bundle (a folder or the files of an archive) into a `LoadedBundle`.

The layout is OPA's: `.manifest` (revision, roots, optional wasm modules), Rego modules,
`data.json` files whose folder is their place under `data`, `*_test.rego` test modules, and
`policy.wasm` when the bundle was built with `opa build -t wasm`. Signatures are checked by
the upload path before a bundle gets here; this module only reads and validates the layout.
"""

import errno
import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from hub.policy.errors import PolicyLoadError

MANIFEST = ".manifest"
MAX_FILE_BYTES = 1024 * 1024  # a Rego module or data file; bigger is a mistake or an attack
WASM_FILE = "policy.wasm"
_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z_][\w.]*)", re.MULTILINE)


class WasmModule(msgspec.Struct, frozen=True, kw_only=True):
    """One compiled module named by the manifest and the entrypoint it serves."""

    entrypoint: str
    module: str


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """The fields of `.manifest` the hub uses (others are kept by the archive, not here)."""

    revision: str = ""
    roots: list[str] = msgspec.field(default_factory=lambda: [""])
    rego_version: int | None = None
    wasm: list[WasmModule] = []


class LoadedBundle(msgspec.Struct, frozen=True, kw_only=True):
    """A bundle read into memory: what an engine is built from.

    `sources` are the policy modules by path (test modules apart, in `tests`), `data_json`
    is every `data.json` merged into one document, `wasm` the compiled policy if present.
    """

    revision: str
    roots: list[str]
    sources: dict[str, str]
    data_json: str
    wasm: bytes | None = None
    tests: dict[str, str] = {}
    wasm_entrypoints: list[str] = []


def load_bundle_dir(path: Path) -> LoadedBundle:
    """Read the bundle in folder `path` (hidden files other than `.manifest` are skipped;
    a symbolic link is refused)."""
    if path.is_symlink() or not path.is_dir():
        raise PolicyLoadError(f"bundle folder {path} does not exist (or is a symbolic link)")
    files: dict[str, bytes] = {}
    for file in sorted(path.rglob("*")):
        relative = file.relative_to(path).as_posix()
        if _hidden(relative):
            continue
        if file.is_symlink():  # a bundle is self-contained: never read outside it
            raise PolicyLoadError(f"{relative} is a symbolic link")
        if file.is_file():
            files[relative] = _read_file(file, relative)
    return load_bundle_files(files)


def _read_file(path: Path, relative: str) -> bytes:
    """A file's bytes; refuses a symlink swapped in after the walk and files over the limit."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PolicyLoadError(f"{relative} is a symbolic link") from None
        raise
    with os.fdopen(handle, "rb") as file:
        raw = file.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise PolicyLoadError(f"{relative} is larger than {MAX_FILE_BYTES} bytes")
    return raw


def load_bundle_files(files: Mapping[str, bytes]) -> LoadedBundle:
    """Build a bundle from its files by relative path (as read from a folder or an archive)."""
    manifest = _manifest(files.get(MANIFEST))
    sources: dict[str, str] = {}
    tests: dict[str, str] = {}
    data: dict[str, Any] = {}
    for name in sorted(files):
        if name.endswith(".rego"):
            text = _text(name, files[name])
            _check_package_roots(name, text, manifest.roots)
            (tests if name.endswith("_test.rego") else sources)[name] = text
        elif name == "data.json" or name.endswith("/data.json"):
            _merge_data(data, name, files[name], manifest.roots)
    wasm = _wasm(files, manifest)
    if not sources and wasm is None:
        raise PolicyLoadError("bundle has neither Rego modules nor policy.wasm")
    return LoadedBundle(
        revision=manifest.revision or _content_revision(files),
        roots=manifest.roots,
        sources=sources,
        data_json=msgspec.json.encode(data).decode(),
        wasm=wasm,
        tests=tests,
        wasm_entrypoints=[m.entrypoint for m in manifest.wasm],
    )


def _hidden(relative: str) -> bool:
    return relative != MANIFEST and any(part.startswith(".") for part in relative.split("/"))


def _manifest(raw: bytes | None) -> Manifest:
    if raw is None:
        return Manifest()
    try:
        return msgspec.json.decode(raw, type=Manifest)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise PolicyLoadError(f".manifest is not valid: {exc}") from None


def _text(name: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyLoadError(f"{name} is not UTF-8 text") from None


def _under_roots(path: str, roots: list[str]) -> bool:
    return any(
        not root or path == root or path.startswith(root.rstrip("/") + "/") for root in roots
    )


def _check_package_roots(name: str, text: str, roots: list[str]) -> None:
    match = _PACKAGE.search(text)
    if match is None:
        raise PolicyLoadError(f"{name} has no package declaration")
    package = match.group(1).replace(".", "/")
    if not _under_roots(package, roots):
        raise PolicyLoadError(f"{name}: package {match.group(1)} is outside the bundle roots")


def _merge_data(data: dict[str, Any], name: str, raw: bytes, roots: list[str]) -> None:
    """Place a `data.json` at its folder's path under `data`, refusing overlaps."""
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise PolicyLoadError(f"{name} is not valid JSON: {exc}") from None
    folder = name.split("/")[:-1]
    if not folder:
        if not isinstance(value, dict):
            raise PolicyLoadError(f"{name} must hold a JSON object")
        _deep_merge(data, value, name)
        return
    if not _under_roots("/".join(folder), roots):
        raise PolicyLoadError(f"{name} lies outside the bundle roots")
    parent = data
    for part in folder[:-1]:
        parent = parent.setdefault(part, {})
        if not isinstance(parent, dict):
            raise PolicyLoadError(f"{name} overlaps another data document")
    last = folder[-1]
    if last not in parent:
        parent[last] = value
    elif isinstance(parent[last], dict) and isinstance(value, dict):
        _deep_merge(parent[last], value, name)
    else:
        raise PolicyLoadError(f"{name} overlaps another data document")


def _deep_merge(into: dict[str, Any], value: dict[str, Any], name: str) -> None:
    for key, item in value.items():
        if key in into and isinstance(into[key], dict) and isinstance(item, dict):
            _deep_merge(into[key], item, name)
        elif key in into:
            raise PolicyLoadError(f"{name}: data key {key!r} is defined twice")
        else:
            into[key] = item


def _wasm(files: Mapping[str, bytes], manifest: Manifest) -> bytes | None:
    names = [m.module.lstrip("/") for m in manifest.wasm] or [WASM_FILE]
    found = [files[name] for name in dict.fromkeys(names) if name in files]
    if len(found) > 1:
        raise PolicyLoadError("bundles with more than one wasm module are not supported")
    if manifest.wasm and not found:
        raise PolicyLoadError(f".manifest names {names[0]} but the bundle does not contain it")
    return found[0] if found else None


def _content_revision(files: Mapping[str, bytes]) -> str:
    """A revision for a bundle whose manifest names none: a digest of its files."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return "sha256-" + digest.hexdigest()[:16]
