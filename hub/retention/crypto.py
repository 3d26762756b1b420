"""Envelope encryption of PII: per-subject data keys wrapped by a master key.

A *subject* is the keyed hash (HMAC-SHA256 under the hub's subject key) of what identifies a
person in an event: the normalised plate text of a detection, else its camera and track, else
the event and detection index. The hash is stable, so every sighting of one plate shares one
data key, and it is not reversible without the subject key, so audit entries may carry it.
"""

import hmac
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.kit.keyfiles import load_or_create_secret

_NOT_ALNUM = re.compile(r"[^0-9A-Z]")


def normalise_plate(text: str) -> str:
    """Plate text as compared: upper case, letters and digits only ("ab-123 cd" -> AB123CD)."""
    return _NOT_ALNUM.sub("", text.upper())


@dataclass(frozen=True, slots=True)
class KeyRing:
    """Master keys by id (the current one wraps new data keys) and the subject-hash key."""

    current_id: str
    masters: dict[str, bytes]
    subject_key: bytes

    @classmethod
    def load(cls, folder: Path, *, current_id: str) -> "KeyRing":
        """Read every `master-<id>.key` in `folder`, creating the current one (0600) if new."""
        load_or_create_secret(folder / f"master-{current_id}.key")
        masters = {
            path.stem.removeprefix("master-"): path.read_bytes()[:32]
            for path in folder.glob("master-*.key")
        }
        subject_key = load_or_create_secret(folder / "subject.key")
        return cls(current_id=current_id, masters=masters, subject_key=subject_key)

    def subject_of(self, identity: str) -> str:
        """The keyed hash naming a subject (hex)."""
        return hmac.digest(self.subject_key, identity.encode(), "sha256").hex()

    def plate_subject(self, plate_text: str) -> str:
        """The subject of a plate number."""
        return self.subject_of("plate:" + normalise_plate(plate_text))

    def new_data_key(self, subject: str) -> tuple[bytes, bytes]:
        """A fresh data key and its wrapping under the current master key."""
        key = AESGCM.generate_key(bit_length=256)
        return key, self.wrap(key, subject=subject)

    def wrap(self, key: bytes, *, subject: str) -> bytes:
        """Encrypt a data key under the current master key (nonce prepended)."""
        nonce = os.urandom(12)
        master = AESGCM(self.masters[self.current_id])
        return nonce + master.encrypt(nonce, key, subject.encode())

    def unwrap(self, wrapped: bytes, *, master_id: str, subject: str) -> bytes:
        """Decrypt a data key wrapped under master key `master_id`."""
        master = AESGCM(self.masters[master_id])
        return master.decrypt(wrapped[:12], wrapped[12:], subject.encode())


def open_sealed(key: bytes, nonce: bytes, ciphertext: bytes, *, aad: bytes) -> bytes:
    """AES-256-GCM decrypt (raises `cryptography.exceptions.InvalidTag` when tampered)."""
    return AESGCM(key).decrypt(nonce, ciphertext, aad)
