"""Bundle signatures in OPA's `.signatures.json` format.

The file is `{"signatures": ["<JWT>"]}` with exactly one compact JWS. Its protected header
carries `alg`, `typ: JWT` and `kid`; its payload lists every other file of the bundle::

    {"files": [{"name": ".manifest", "hash": "<hex>", "algorithm": "SHA-256"}, ...],
     "keyid": "<kid>", "iat": 1700000000, "scope": "<optional>"}

(see OPA's "Bundles > Signing" documentation, `docs/content/management-bundles.md`). OPA
takes the key id from its configuration, then from the payload's `keyid`, then from the
header's `kid`; we write both and, when both are present, require them to agree. Hashes are
computed as OPA does (`hashing.py`) and compared in constant time.
"""

import base64
import hmac
import time
from collections.abc import Mapping

import msgspec
from joserfc import jws
from joserfc.errors import JoseError

from hub.policy.bundles.archive import SIGNATURES
from hub.policy.bundles.errors import BundleError
from hub.policy.bundles.hashing import DEFAULT_HASH, file_digest
from hub.policy.bundles.keys import VerifyKey, private_key, public_key


class SignedFile(msgspec.Struct, frozen=True, kw_only=True):
    """One file named in the signature, with its digest."""

    name: str
    hash: str
    algorithm: str


class SignaturePayload(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The JWT claims of an OPA bundle signature (`iat`/`iss` are informational)."""

    files: list[SignedFile]
    keyid: str | None = None
    scope: str | None = None
    iat: int | None = None
    iss: str | None = None


class SignaturesFile(msgspec.Struct, frozen=True, kw_only=True):
    """`.signatures.json`."""

    signatures: list[str]


class SignatureCheck(msgspec.Struct, frozen=True, kw_only=True):
    """A verified signature: who signed (key id), with what, over how many files."""

    key_id: str
    algorithm: str
    files: int


def sign_bundle(
    files: Mapping[str, bytes], *, private_key_pem: str | bytes, key_id: str, scope: str = ""
) -> bytes:
    """The `.signatures.json` for these files (any existing one is not itself signed)."""
    key, algorithm = private_key(private_key_pem)
    payload = SignaturePayload(
        files=[
            SignedFile(name=name, hash=file_digest(name, files[name]), algorithm=DEFAULT_HASH)
            for name in sorted(files)
            if name != SIGNATURES
        ],
        keyid=key_id,
        scope=scope or None,
        iat=int(time.time()),
    )
    header = {"alg": algorithm, "typ": "JWT", "kid": key_id}
    body = msgspec.json.encode(payload)
    token = jws.serialize_compact(header, body, key, algorithms=[algorithm])
    return msgspec.json.encode(SignaturesFile(signatures=[token]))


def verify_bundle(
    files: Mapping[str, bytes], *, keys: Mapping[str, VerifyKey], required: bool
) -> SignatureCheck | None:
    """Check `.signatures.json` against trusted `keys`; None for an unsigned bundle that
    is allowed. A signature that is present is always checked, required or not."""
    raw = files.get(SIGNATURES)
    if raw is None:
        if required:
            raise BundleError(
                "the bundle has no .signatures.json and signed bundles are required",
                code="bundle_unsigned",
            )
        return None
    token = _single_token(raw)
    key_id, algorithm, payload = _verified_payload(token, keys)
    _check_files(files, payload.files)
    return SignatureCheck(key_id=key_id, algorithm=algorithm, files=len(payload.files))


def _single_token(raw: bytes) -> str:
    try:
        document = msgspec.json.decode(raw, type=SignaturesFile)
    except msgspec.DecodeError as exc:
        raise _invalid(f".signatures.json is not valid: {exc}") from None
    if len(document.signatures) != 1:
        raise _invalid(".signatures.json must hold exactly one JWT")
    return document.signatures[0]


def _verified_payload(
    token: str, keys: Mapping[str, VerifyKey]
) -> tuple[str, str, SignaturePayload]:
    header, claims = _unverified_parts(token)
    kid = header.get("kid")
    key_id = claims.keyid or (kid if isinstance(kid, str) else None)
    if not key_id:
        raise _invalid("the signature names no key (no `kid` header, no `keyid` claim)")
    if isinstance(kid, str) and claims.keyid and kid != claims.keyid:
        raise _invalid("the signature's `kid` header and `keyid` claim disagree")
    trusted = keys.get(key_id)
    if trusted is None:
        raise _invalid(f"key id {key_id!r} is not a trusted bundle signing key")
    key, algorithm = public_key(trusted.public_key)
    if header.get("alg") != algorithm:
        raise _invalid(f"key {key_id!r} verifies {algorithm} signatures only")
    try:
        jws.deserialize_compact(token, key, algorithms=[algorithm])
    except (JoseError, ValueError):
        raise _invalid(f"the signature does not verify with key {key_id!r}") from None
    if (claims.scope or "") != trusted.scope:
        raise _invalid(f"the signature's scope does not match key {key_id!r}")
    return key_id, algorithm, claims


def _unverified_parts(token: str) -> tuple[dict[str, object], SignaturePayload]:
    """Header and claims, read only to pick the key; nothing is trusted before verification."""
    parts = token.split(".")
    if len(parts) != 3:
        raise _invalid("the signature is not a compact JWS")
    try:
        header = msgspec.json.decode(_b64(parts[0]), type=dict[str, object])
        claims = msgspec.json.decode(_b64(parts[1]), type=SignaturePayload)
    except (ValueError, msgspec.DecodeError) as exc:
        raise _invalid(f"the signature cannot be decoded: {exc}") from None
    return header, claims


def _check_files(files: Mapping[str, bytes], signed: list[SignedFile]) -> None:
    listed = {entry.name.lstrip("/"): entry for entry in signed}
    if len(listed) != len(signed):
        raise _invalid("the signature lists a file twice")
    present = {name for name in files if name != SIGNATURES}
    unsigned, absent = sorted(present - set(listed)), sorted(set(listed) - present)
    if unsigned:
        raise _invalid(f"files not covered by the signature: {', '.join(unsigned[:10])}")
    if absent:
        raise _invalid(f"signed files missing from the bundle: {', '.join(absent[:10])}")
    for name in sorted(present):
        entry = listed[name]
        actual = file_digest(name, files[name], algorithm=entry.algorithm)
        if not hmac.compare_digest(actual.encode(), entry.hash.lower().encode()):
            raise _invalid(f"{name} does not match its signed digest")


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _invalid(detail: str) -> BundleError:
    return BundleError(detail, code="bundle_signature_invalid")
