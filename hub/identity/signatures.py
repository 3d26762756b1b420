"""Server side of the hub's HTTP Message Signatures (RFC 9421) for edge uploads.

An upload must carry ``Content-Digest`` (RFC 9530, sha-256) matching its body and one
Ed25519 signature covering ``@method``, ``@target-uri`` and ``content-digest`` with the
``created``, ``keyid`` and ``nonce`` parameters, created within ``max_skew_seconds`` of
``now``. Cryptographic verification is delegated to ``http_message_signatures``; nonce
replay checking is the caller's job. `check_metadata` runs every check that needs no body,
so a caller can refuse a stale or malformed signature before reading (up to megabytes of)
body bytes. Every rejection is a `SignatureError` whose stable
``code`` names the failed check and whose ``detail`` never holds keys or body bytes.
"""

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import http_sf
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageVerifier,
    MappingKeyResolver,
    VerifyResult,
)
from http_message_signatures.algorithms import ED25519

REQUIRED_COMPONENTS = frozenset({"@method", "@target-uri", "content-digest"})
REQUIRED_PARAMS = ("created", "keyid", "nonce")
_SIGNATURE_FIELDS = frozenset({"signature-input", "signature"})
_SINGLE_FIELDS = _SIGNATURE_FIELDS | {"content-digest"}
_SHA256_SIZE = 32


class SignatureError(Exception):
    """A request signature or digest was rejected; ``code`` is stable, ``detail`` is safe."""

    def __init__(self, code: str, detail: str) -> None:
        """Record the stable ``code`` and the human ``detail`` sentence."""
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """The signed metadata of a request whose signature and digest verified."""

    key_id: str
    created: datetime
    nonce: str
    label: str


@dataclass(frozen=True, slots=True)
class _SignatureInput:
    """The one parsed ``Signature-Input`` member: label, covered names, parameters."""

    label: str
    components: frozenset[str]  # covered components without parameters
    field_names: frozenset[str]  # every covered header field, with or without parameters
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _IncomingRequest:
    """The minimal request view the verification library reads."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)


class _Verifier(HTTPMessageVerifier):
    """Library verifier whose wall-clock checks are replaced by `verify_request`'s own."""

    def validate_created_and_expires(self, sig_input: object, max_age: object = None) -> None:
        """Skip the library's time checks: `_check_times` applies them against ``now``."""


def _no_dup(name: str, context: str) -> None:
    """Refuse a repeated dictionary key (signature label) while parsing."""
    if context == "dictionary":
        raise ValueError(f"duplicate member {name!r}")


def _lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Return ``headers`` keyed by lowercase name, refusing repeated signature fields."""
    fields: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        if key in fields and key in _SINGLE_FIELDS:
            raise SignatureError("signature_malformed", f"The {key} header appears twice.")
        fields[key] = value
    return fields


def _parse_dictionary(fields: Mapping[str, str], name: str) -> dict[str, Any]:
    """Parse the structured-field dictionary header ``name`` holding exactly one member."""
    value = fields.get(name)
    if value is None:
        raise SignatureError("signature_missing", f"The {name} header is missing.")
    try:
        parsed = http_sf.parse(value.encode(), tltype="dictionary", on_duplicate_key=_no_dup)
    except ValueError:
        raise SignatureError("signature_malformed", f"The {name} header is malformed.") from None
    if not isinstance(parsed, dict) or len(parsed) != 1:
        raise SignatureError("signature_malformed", f"The {name} header must hold one signature.")
    return parsed


def _parse_signature_input(fields: Mapping[str, str]) -> _SignatureInput:
    """Parse ``Signature-Input`` into its label, covered component names and parameters."""
    ((label, member),) = _parse_dictionary(fields, "signature-input").items()
    inner, params = member
    if not isinstance(inner, list):
        raise SignatureError("signature_malformed", "Signature-Input must be an inner list.")
    bare = frozenset(v for v, item_params in inner if isinstance(v, str) and not item_params)
    named = frozenset(v for v, _ in inner if isinstance(v, str) and not v.startswith("@"))
    _check_param_types(params)
    return _SignatureInput(label=label, components=bare, field_names=named, params=params)


def _check_param_types(params: Mapping[str, Any]) -> None:
    """Refuse signature parameters of the wrong structured-field type."""
    for name in ("created", "expires"):
        if name in params and type(params[name]) is not int:
            raise SignatureError("signature_malformed", f"Parameter {name} must be an integer.")
    for name in ("keyid", "nonce"):
        if name in params and (not isinstance(params[name], str) or not params[name]):
            raise SignatureError("signature_malformed", f"Parameter {name} must be a string.")


def _check_signature_field(fields: Mapping[str, str], label: str) -> None:
    """Check that ``Signature`` holds one byte sequence under the ``Signature-Input`` label."""
    ((sig_label, member),) = _parse_dictionary(fields, "signature").items()
    if sig_label != label or not isinstance(member[0], bytes):
        raise SignatureError("signature_malformed", "Signature does not match Signature-Input.")


def _check_coverage(sig_input: _SignatureInput) -> None:
    """Require the mandatory covered components and signature parameters."""
    missing = sorted(REQUIRED_COMPONENTS - sig_input.components)
    missing += [name for name in REQUIRED_PARAMS if name not in sig_input.params]
    if missing:
        raise SignatureError(
            "signature_components", f"The signature does not cover: {', '.join(missing)}."
        )


def _check_times(params: Mapping[str, Any], now: datetime, max_skew_seconds: int) -> datetime:
    """Return ``created`` once it is within the skew of ``now`` and ``expires`` has not passed."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware.")
    try:
        created = datetime.fromtimestamp(params["created"], tz=UTC)
        expires = params.get("expires")
        expired = expires is not None and datetime.fromtimestamp(expires, tz=UTC) < now
    except (OverflowError, OSError, ValueError):
        raise SignatureError("signature_malformed", "A timestamp is out of range.") from None
    if abs(created - now) > timedelta(seconds=max_skew_seconds):
        raise SignatureError(
            "signature_expired", f"The signature is more than {max_skew_seconds} s from now."
        )
    if expired:
        raise SignatureError("signature_expired", "The signature has expired.")
    return created


def _check_digest(fields: Mapping[str, str], body: bytes) -> None:
    """Require a ``Content-Digest`` whose sha-256 member equals the body's sha-256."""
    value = fields.get("content-digest")
    if value is None:
        raise SignatureError("digest_missing", "The Content-Digest header is missing.")
    try:
        parsed = http_sf.parse(value.encode(), tltype="dictionary")
    except ValueError:
        raise SignatureError("digest_mismatch", "The Content-Digest header is malformed.") from None
    member = parsed.get("sha-256") if isinstance(parsed, dict) else None
    claimed = member[0] if isinstance(member, tuple) else None
    if not isinstance(claimed, bytes) or len(claimed) != _SHA256_SIZE:
        raise SignatureError("digest_mismatch", "Content-Digest has no valid sha-256 member.")
    if not hmac.compare_digest(claimed, hashlib.sha256(body).digest()):
        raise SignatureError("digest_mismatch", "Content-Digest does not match the body.")


def _covered_headers(fields: Mapping[str, str], sig_input: _SignatureInput) -> dict[str, str]:
    """Keep only the headers the library reads, which makes its per-call work smaller."""
    names = sig_input.field_names | _SIGNATURE_FIELDS
    return {name: fields[name] for name in names if name in fields}


def _verify_cryptographically(
    request: _IncomingRequest, key_id: str, public_key: Ed25519PublicKey
) -> VerifyResult:
    """Let the library rebuild the signature base and verify the Ed25519 signature."""
    resolver = MappingKeyResolver(public_keys={key_id: public_key}, private_keys={})
    verifier = _Verifier(signature_algorithm=ED25519, key_resolver=resolver)
    try:
        (result,) = verifier.verify(request, max_age=None)
    except HTTPMessageSignaturesException:
        raise SignatureError(
            "signature_invalid", "The signature does not verify for this request and key."
        ) from None
    return result


@dataclass(frozen=True, slots=True)
class SignatureHeaders:
    """A request's headers with its one ``Signature-Input`` member parsed, so the checks
    before and after reading the body do not parse them again."""

    fields: dict[str, str]  # lowercase names
    sig_input: _SignatureInput


def parse_signature_headers(headers: Mapping[str, str]) -> SignatureHeaders:
    """Parse the signature headers once (shape only: nothing is verified yet)."""
    fields = _lower_headers(headers)
    return SignatureHeaders(fields=fields, sig_input=_parse_signature_input(fields))


def key_id_of(signed: SignatureHeaders) -> str:
    """The (unverified) ``keyid`` of the signature, to look its key up."""
    if "keyid" not in signed.sig_input.params:
        raise SignatureError("signature_components", "The signature does not cover: keyid.")
    key_id: str = signed.sig_input.params["keyid"]
    return key_id


def read_key_id(headers: Mapping[str, str]) -> str:
    """Return the (unverified) ``keyid`` of the request's signature, to look its key up."""
    return key_id_of(parse_signature_headers(headers))


def check_metadata(
    headers: Mapping[str, str] | SignatureHeaders,
    *,
    now: datetime,
    max_skew_seconds: int = 300,
) -> datetime:
    """Every check that needs no body (shape, coverage, time window); returns ``created``."""
    signed = _parsed(headers)
    _check_signature_field(signed.fields, signed.sig_input.label)
    _check_coverage(signed.sig_input)
    return _check_times(signed.sig_input.params, now, max_skew_seconds)


def verify_request(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str] | SignatureHeaders,
    body: bytes,
    public_key: Ed25519PublicKey,
    now: datetime,
    max_skew_seconds: int = 300,
) -> VerifiedSignature:
    """Verify the request's digest and signature; return its signed metadata or raise.

    Complete on its own: every check of `check_metadata` runs again (they are cheap next to
    the signature; only the parsing is shared)."""
    signed = _parsed(headers)
    fields, sig_input = signed.fields, signed.sig_input
    created = check_metadata(signed, now=now, max_skew_seconds=max_skew_seconds)
    _check_digest(fields, body)
    key_id: str = sig_input.params["keyid"]
    request = _IncomingRequest(method, url, _covered_headers(fields, sig_input))
    result = _verify_cryptographically(request, key_id, public_key)
    nonce: str = sig_input.params["nonce"]
    return VerifiedSignature(key_id=key_id, created=created, nonce=nonce, label=result.label)


def _parsed(headers: Mapping[str, str] | SignatureHeaders) -> SignatureHeaders:
    return headers if isinstance(headers, SignatureHeaders) else parse_signature_headers(headers)
