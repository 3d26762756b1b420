"""Bundle signing keys: the verify-keys file, key generation, and the algorithm of each key.

The algorithm always follows from the key (P-256 -> ES256, P-384 -> ES384, P-521 -> ES512,
RSA -> RS256), never from a token header, so a token cannot pick a weaker check. EdDSA is not
offered: OPA cannot verify it and joserfc has deprecated the `EdDSA` name (RFC 9864).

The verify-keys file (``HUB_POLICY_VERIFY_KEYS_FILE``) is TOML or JSON, one entry per key id,
so keys can be rotated by adding the new one before retiring the old::

    [keys.admin-2026]
    public_key = '''
    -----BEGIN PUBLIC KEY-----
    ...
    -----END PUBLIC KEY-----
    '''
    scope = ""   # optional; a signature's `scope` claim must equal it

It is re-read on every upload, so a key added or removed takes effect without a restart.
"""

import json
import tomllib
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc.jwk import ECKey, RSAKey

from hub.kit.keyfiles import write_private_key
from hub.policy.bundles.errors import BundleError

SigningKey = ECKey | RSAKey
_CURVES = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


class VerifyKey(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One trusted public key and the scope its signatures must carry."""

    public_key: str
    scope: str = ""


class VerifyKeysFile(msgspec.Struct, frozen=True, kw_only=True):
    """The whole file: `keys` by key id."""

    keys: dict[str, VerifyKey] = {}


class KeysFileError(Exception):
    """The verify-keys file cannot be read; the message names the file and the problem."""


def read_verify_keys(path: Path) -> dict[str, VerifyKey]:
    """Trusted keys by key id (an absent file trusts no key)."""
    if not path.exists():
        return {}
    try:
        raw = path.read_bytes()
        value = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw.decode("utf-8"))
        return msgspec.convert(value, VerifyKeysFile).keys
    except (OSError, ValueError, msgspec.ValidationError) as exc:
        raise KeysFileError(f"policy verify keys file {path}: {exc}") from None


def public_key(pem: str | bytes) -> tuple[SigningKey, str]:
    """A trusted public key and the one algorithm it verifies."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        loaded = serialization.load_pem_public_key(data)
    except ValueError:
        raise BundleError(
            "a configured key is not a PEM public key", code="bundle_signature_invalid"
        ) from None
    return _wrap(loaded)


def private_key(pem: str | bytes) -> tuple[SigningKey, str]:
    """A signing key (PEM, unencrypted PKCS#8 or traditional) and its algorithm."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise BundleError(
            f"not a usable PEM private key: {exc}", code="bundle_signature_invalid"
        ) from None
    return _wrap(loaded)


def generate_key_pem(path: Path) -> str:
    """Write a new P-256 (ES256) private key to `path` (0600, never overwriting); return the
    public key as PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    return write_private_key(path, key)


def _wrap(loaded: object) -> tuple[SigningKey, str]:
    if isinstance(loaded, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        algorithm = _CURVES.get(loaded.curve.name)
        if algorithm is not None:
            return ECKey.import_key(loaded), algorithm
    if isinstance(loaded, rsa.RSAPrivateKey | rsa.RSAPublicKey) and loaded.key_size >= 2048:
        return RSAKey.import_key(loaded), "RS256"
    raise BundleError(
        "keys must be EC P-256/P-384/P-521 or RSA of at least 2048 bits",
        code="bundle_signature_invalid",
    )
