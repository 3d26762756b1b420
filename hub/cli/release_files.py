"""Signed release folders: the wheel(s), the SBOM and `SIGNATURES.json`, checked before use.

The signature has the shape of a policy bundle's `.signatures.json` (hub/policy/bundles):
one compact JWS whose payload lists every other file of the folder with its SHA-256, plus
`keyid` and `iat`; the header names the key (`kid`). Releases are signed with Ed25519
(JWS algorithm `Ed25519`, RFC 9864), which OPA's constraint on bundles does not bind here.
The trusted keys file has the bundle verify-keys layout (TOML or JSON)::

    [keys.release-2026]
    public_key = '''-----BEGIN PUBLIC KEY----- ... -----END PUBLIC KEY-----'''

A folder verifies only when every regular file in it is signed, every signed file is there
with its digest, and nothing else (no sub-folder, no link) is present: what is installed is
exactly what was signed.
"""

import hashlib
import hmac
import json
import time
import tomllib
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from hub.kit.keyfiles import write_private_key

SIGNATURES = "SIGNATURES.json"
ALGORITHM = "Ed25519"
HASH = "SHA-256"
# A release is a few wheels and an SBOM; a folder of thousands of files is not one.
MAX_FILES = 64


class ReleaseError(Exception):
    """A release folder that must not be used; the message says which file and why."""


class SignedFile(msgspec.Struct, frozen=True, kw_only=True):
    """One file named in the signature, with its digest."""

    name: str
    hash: str
    algorithm: str = HASH


class SignaturePayload(msgspec.Struct, frozen=True, kw_only=True):
    """The JWS claims: the files, the key id and when it was signed."""

    files: list[SignedFile]
    keyid: str
    iat: int


class SignaturesFile(msgspec.Struct, frozen=True, kw_only=True):
    """`SIGNATURES.json`."""

    signatures: list[str]


class TrustedKey(msgspec.Struct, frozen=True, kw_only=True):
    """One trusted public key (PEM)."""

    public_key: str
    scope: str = ""


class TrustedKeys(msgspec.Struct, frozen=True, kw_only=True):
    """The trusted keys file: `keys` by key id."""

    keys: dict[str, TrustedKey] = {}


class Verified(msgspec.Struct, frozen=True, kw_only=True):
    """A folder that verified: who signed it, when, and its files."""

    key_id: str
    signed_at: int
    files: list[str]


def generate_key(path: Path, *, key_id: str) -> str:
    """Write a new Ed25519 private key to `path` (0600, never overwriting); return the
    trusted-keys TOML entry for its public key."""
    public_pem = write_private_key(path, Ed25519PrivateKey.generate())
    return f"[keys.{json.dumps(key_id)}]\npublic_key = '''\n{public_pem.strip()}\n'''\n"


def sign_folder(folder: Path, *, private_key_pem: bytes, key_id: str) -> list[str]:
    """Sign every file of `folder` (replacing an old signature); the names signed."""
    key = _private_key(private_key_pem)
    files = _listing(folder)
    payload = SignaturePayload(
        files=[SignedFile(name=name, hash=_digest(folder / name)) for name in files],
        keyid=key_id,
        iat=int(time.time()),
    )
    header = {"alg": ALGORITHM, "typ": "JWT", "kid": key_id}
    token = jws.serialize_compact(header, msgspec.json.encode(payload), key, algorithms=[ALGORITHM])
    (folder / SIGNATURES).write_bytes(msgspec.json.encode(SignaturesFile(signatures=[token])))
    return files


def verify_folder(folder: Path, *, keys_file: Path) -> Verified:
    """The signer and files of `folder`, or `ReleaseError` saying what does not verify."""
    trusted = read_trusted_keys(keys_file)
    token = _single_token(folder / SIGNATURES)
    payload = _verified_payload(token, trusted)
    _check_files(folder, payload.files)
    return Verified(
        key_id=payload.keyid, signed_at=payload.iat, files=[f.name for f in payload.files]
    )


def read_trusted_keys(path: Path) -> dict[str, TrustedKey]:
    """Trusted keys by key id; an unreadable or empty file is an error (trust nothing)."""
    try:
        raw = path.read_bytes()
        value = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw.decode("utf-8"))
        keys = msgspec.convert(value, TrustedKeys).keys
    except (OSError, ValueError, msgspec.ValidationError) as exc:
        raise ReleaseError(f"trusted keys file {path}: {exc}") from None
    if not keys:
        raise ReleaseError(f"trusted keys file {path} names no key")
    return keys


def _listing(folder: Path) -> list[str]:
    """The names of the folder's files, signature excluded; anything but files refused."""
    if not folder.is_dir():
        raise ReleaseError(f"{folder} is not a folder")
    names = []
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink() or not entry.is_file():
            raise ReleaseError(f"{entry.name}: only regular files belong in a release folder")
        if entry.name != SIGNATURES:
            names.append(entry.name)
    if not names or len(names) > MAX_FILES:
        raise ReleaseError(f"{folder} holds {len(names)} files (1 to {MAX_FILES} expected)")
    return names


def _digest(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _private_key(pem: bytes) -> OKPKey:
    try:
        loaded = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ReleaseError(f"not a usable PEM private key: {exc}") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ReleaseError("releases are signed with Ed25519 keys only")
    return OKPKey.import_key(loaded)


def _public_key(pem: str, key_id: str) -> OKPKey:
    try:
        loaded = serialization.load_pem_public_key(pem.encode())
    except ValueError:
        raise ReleaseError(f"trusted key {key_id!r} is not a PEM public key") from None
    if not isinstance(loaded, Ed25519PublicKey):
        raise ReleaseError(f"trusted key {key_id!r} is not an Ed25519 key")
    return OKPKey.import_key(loaded)


def _single_token(path: Path) -> str:
    try:
        document = msgspec.json.decode(path.read_bytes(), type=SignaturesFile)
    except FileNotFoundError:
        raise ReleaseError(f"{SIGNATURES} is missing: the release is not signed") from None
    except (OSError, msgspec.DecodeError) as exc:
        raise ReleaseError(f"{SIGNATURES} is not valid: {exc}") from None
    if len(document.signatures) != 1:
        raise ReleaseError(f"{SIGNATURES} must hold exactly one signature")
    return document.signatures[0]


def _verified_payload(token: str, trusted: dict[str, TrustedKey]) -> SignaturePayload:
    """The payload after the signature verified with the trusted key its header names."""
    try:
        header = jws.extract_compact(token.encode()).headers()
    except (JoseError, ValueError):
        raise ReleaseError("the signature is not a compact JWS") from None
    key_id = header.get("kid")
    if not isinstance(key_id, str) or key_id not in trusted:
        raise ReleaseError(f"key id {key_id!r} is not a trusted release signing key")
    if header.get("alg") != ALGORITHM:
        raise ReleaseError(f"releases are signed with {ALGORITHM} only")
    key = _public_key(trusted[key_id].public_key, key_id)
    try:
        verified = jws.deserialize_compact(token, key, algorithms=[ALGORITHM])
        payload = msgspec.json.decode(verified.payload, type=SignaturePayload)
    except (JoseError, ValueError, msgspec.DecodeError):
        raise ReleaseError(f"the signature does not verify with key {key_id!r}") from None
    if payload.keyid != key_id:
        raise ReleaseError("the signature's `kid` header and `keyid` claim disagree")
    return payload


def _check_files(folder: Path, signed: list[SignedFile]) -> None:
    listed = {entry.name: entry for entry in signed}
    present = set(_listing(folder))
    if len(listed) != len(signed) or any(entry.algorithm != HASH for entry in signed):
        raise ReleaseError("the signature lists a file twice or with an unknown hash")
    unsigned, absent = sorted(present - set(listed)), sorted(set(listed) - present)
    if unsigned:
        raise ReleaseError(f"files not covered by the signature: {', '.join(unsigned)}")
    if absent:
        raise ReleaseError(f"signed files missing from the folder: {', '.join(absent)}")
    for name in sorted(present):
        actual = _digest(folder / name)
        if not hmac.compare_digest(actual, listed[name].hash.lower()):
            raise ReleaseError(f"{name} does not match its signed digest")
