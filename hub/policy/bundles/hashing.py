"""File digests exactly as OPA computes them for `.signatures.json`.

OPA hashes most files as their raw bytes. Its "structured" files, those whose base name is
`data.json`, `data.yaml`, `.manifest` or `.signatures.json`, are parsed first and hashed over a
canonical JSON text: objects with keys in sorted order, no whitespace, numbers written as
they appeared in the file (OPA decodes them as `json.Number`), strings escaped as Go's encoder
does without HTML escaping (so U+2028 and U+2029 are escaped, `<` `>` `&` are not). The same
bundle therefore verifies whether it was signed by `opa sign` or by `hub policy sign`.
"""

import hashlib
import json
from typing import Any

from hub.policy.bundles.errors import BundleError

STRUCTURED = frozenset({"data.json", "data.yaml", ".manifest", ".signatures.json"})
# Hash algorithms OPA names in `files[].algorithm` that we accept (MD5 and SHA-1 are not).
HASHES = {
    "SHA-256": hashlib.sha256,
    "SHA-384": hashlib.sha384,
    "SHA-512": hashlib.sha512,
}
DEFAULT_HASH = "SHA-256"


class _Number(str):
    """A JSON number kept as its literal text."""


def file_digest(name: str, data: bytes, *, algorithm: str = DEFAULT_HASH) -> str:
    """The hex digest OPA records for the bundle file `name` holding `data`."""
    hasher = HASHES.get(algorithm)
    if hasher is None:
        raise BundleError(
            f"hash algorithm {algorithm!r} is not accepted (use {', '.join(HASHES)})",
            code="bundle_signature_invalid",
        )
    content = canonical_json(name, data) if _structured(name) else data
    return hasher(content).hexdigest()


def canonical_json(name: str, data: bytes) -> bytes:
    """The canonical text OPA hashes for a structured file."""
    try:
        value = json.loads(
            data.decode("utf-8"),
            parse_int=_Number,
            parse_float=_Number,
            parse_constant=_refuse_constant,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BundleError(f"{name} is not valid JSON: {exc}", code="bundle_malformed") from None
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts).encode("utf-8")


def _structured(name: str) -> bool:
    return name.rsplit("/", 1)[-1] in STRUCTURED


def _refuse_constant(literal: str) -> Any:
    raise ValueError(f"{literal} is not JSON")


def _write(value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        out.append("{")
        for index, key in enumerate(sorted(value)):
            if index:
                out.append(",")
            out.append(_string(key))
            out.append(":")
            _write(value[key], out)
        out.append("}")
    elif isinstance(value, list):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif isinstance(value, _Number):
        out.append(str.__str__(value))
    elif isinstance(value, str):
        out.append(_string(value))
    else:  # True, False, None
        out.append(json.dumps(value))


def _string(text: str) -> str:
    # Python escapes the same control characters as Go; Go also escapes the JS line separators.
    return (
        json.dumps(text, ensure_ascii=False)
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )
