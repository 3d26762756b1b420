"""Parsing and fingerprinting Ed25519 public keys."""

import base64
import binascii
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hub.kit.errors import ValidationError


def parse_public_key(text: str) -> bytes:
    """Raw 32-byte Ed25519 key from a PEM (SubjectPublicKeyInfo) or base64 of the raw key."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode())
        except ValueError:
            raise ValidationError("public_key is not a valid PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ValidationError("public_key must be an Ed25519 key")
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=False)
    except binascii.Error:
        raise ValidationError("public_key is neither PEM nor base64") from None
    if len(raw) != 32:
        raise ValidationError("public_key must be 32 bytes of raw Ed25519 key")
    return raw


def fingerprint(raw: bytes) -> str:
    """A short, stable fingerprint operators can compare by eye: SHA256:<base64>."""
    digest = base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def load_public_key(raw: bytes) -> Ed25519PublicKey:
    """A cryptography key object from the raw bytes stored in the registry."""
    return Ed25519PublicKey.from_public_bytes(raw)
