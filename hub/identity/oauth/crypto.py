"""Secrets at rest: argon2id hashes, SHA-256 of random tokens, and sealing under the identity key.

The identity key (32 random bytes, file `identity.key` under HUB_SECRETS_DIR, created 0600 on
first use) seals TOTP secrets and JWT private keys stored in PostgreSQL with AES-256-GCM. Every
API process of one hub must see the same file (a mounted secret in production).
"""

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.kit.keyfiles import load_or_create_secret

KEY_FILE = "identity.key"
_NONCE = 12
_HASHER = PasswordHasher()  # argon2id, RFC 9106 "low memory" defaults (64 MiB, t=3, p=4)
# Verified when the account is unknown, so a miss costs as much time as a wrong secret.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))
MAX_SECRET_LENGTH = 1024


class SealError(Exception):
    """A sealed value could not be opened (wrong identity key or tampered data)."""


def hash_secret(secret: str) -> str:
    """An argon2id PHC string for a password or client secret."""
    return _HASHER.hash(secret)


def verify_secret(stored: str | None, secret: str) -> bool:
    """True when `secret` matches `stored`; always spends one argon2 verification."""
    if len(secret) > MAX_SECRET_LENGTH:
        return False
    try:
        return _HASHER.verify(stored or _DUMMY_HASH, secret) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def token_digest(token: str) -> bytes:
    """SHA-256 of a random token (256 bits of entropy need no slow KDF)."""
    return hashlib.sha256(token.encode()).digest()


def same(a: str, b: str) -> bool:
    """Constant-time string comparison."""
    return hmac.compare_digest(a.encode(), b.encode())


def new_secret(prefix: str) -> str:
    """A recognisable prefix and 256 random bits."""
    return prefix + secrets.token_urlsafe(32)


class Sealer:
    """AES-256-GCM under the identity key; the key file is read on first use only."""

    def __init__(self, secrets_dir: Path) -> None:
        self._path = secrets_dir / KEY_FILE
        self._aead: AESGCM | None = None

    def _cipher(self) -> AESGCM:
        if self._aead is None:
            self._aead = AESGCM(load_or_create_secret(self._path, size=32)[:32])
        return self._aead

    def seal(self, plaintext: bytes, *, context: str) -> bytes:
        """Nonce + ciphertext; `context` (e.g. the kid) is bound as associated data."""
        nonce = os.urandom(_NONCE)
        return nonce + self._cipher().encrypt(nonce, plaintext, context.encode())

    def open(self, sealed: bytes, *, context: str) -> bytes:
        """The plaintext of `seal`'s output; `SealError` when it does not authenticate."""
        try:
            return self._cipher().decrypt(sealed[:_NONCE], sealed[_NONCE:], context.encode())
        except (InvalidTag, ValueError):
            raise SealError("sealed value does not open under the identity key") from None
