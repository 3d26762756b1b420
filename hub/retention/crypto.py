"""Envelope encryption of PII: per-subject data keys wrapped by a master key.

A *subject* is the keyed hash (HMAC-SHA256 under the hub's subject key) of what identifies a
person in an event: the normalised plate text of a detection, else its camera and track, else
the event and detection index. The hash is stable, so every sighting of one plate shares one
data key, and it is not reversible without the subject key, so audit entries may carry it.
"""

import hashlib
import hmac
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.kit.keyfiles import load_or_create_secret

_DATA_KEY_BYTES = 32  # AES-256
_NONCE_BYTES = 12  # AES-GCM's standard nonce
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
    # Built once, not per value: the subject hash's keyed state (copying it costs half of a
    # fresh HMAC) and each master key's cipher. Ingest asks for dozens of both per batch.
    _subject_hash: "hmac.HMAC" = field(init=False, repr=False, compare=False)
    _ciphers: dict[str, AESGCM] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Prepare the keyed hash state and the (lazily filled) master ciphers."""
        state = hmac.new(self.subject_key, digestmod=hashlib.sha256)
        object.__setattr__(self, "_subject_hash", state)
        object.__setattr__(self, "_ciphers", {})

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
        keyed = self._subject_hash.copy()
        keyed.update(identity.encode())
        return keyed.hexdigest()

    def plate_subject(self, plate_text: str) -> str:
        """The subject of a plate number."""
        return self.subject_of("plate:" + normalise_plate(plate_text))

    def new_data_key(self, subject: str) -> tuple[bytes, bytes]:
        """A fresh data key and its wrapping under the current master key."""
        key = AESGCM.generate_key(bit_length=256)
        return key, self.wrap(key, subject=subject)

    def new_data_keys(self, subjects: Sequence[str]) -> dict[str, tuple[bytes, bytes]]:
        """`new_data_key` for each subject, their random bytes drawn in one system call (a
        batch of events keys dozens of subjects)."""
        size = _DATA_KEY_BYTES + _NONCE_BYTES
        random = os.urandom(size * len(subjects))
        master = self._master(self.current_id)
        made = {}
        for n, subject in enumerate(subjects):
            key = random[size * n : size * n + _DATA_KEY_BYTES]
            nonce = random[size * n + _DATA_KEY_BYTES : size * (n + 1)]
            made[subject] = (key, nonce + master.encrypt(nonce, key, subject.encode()))
        return made

    def wrap(self, key: bytes, *, subject: str) -> bytes:
        """Encrypt a data key under the current master key (nonce prepended)."""
        nonce = os.urandom(12)
        return nonce + self._master(self.current_id).encrypt(nonce, key, subject.encode())

    def unwrap(self, wrapped: bytes, *, master_id: str, subject: str) -> bytes:
        """Decrypt a data key wrapped under master key `master_id`."""
        return self._master(master_id).decrypt(wrapped[:12], wrapped[12:], subject.encode())

    def _master(self, master_id: str) -> AESGCM:
        cipher = self._ciphers.get(master_id)
        if cipher is None:
            cipher = self._ciphers[master_id] = AESGCM(self.masters[master_id])
        return cipher
