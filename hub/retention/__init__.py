"""Retention and privacy: how long data lives, the sweep that deletes it, the PII vault.

It owns `retention_run`, `pii_subject_key` and `pii_attribute`. It never deletes what a legal
hold covers, deletes audit entries only through the audit log's own pruning (below a signed
checkpoint, so what remains still verifies), and never deletes anything to relieve disk
pressure: new media is refused instead.
"""

from hub.retention.crypto import KeyRing
from hub.retention.kit import keys_for, process_keys
from hub.retention.vault import (
    Sealed,
    hydrate,
    hydrate_sealed,
    seal_events,
    sealed_of_event,
    strip_payload,
)

__all__ = [
    "KeyRing",
    "Sealed",
    "hydrate",
    "hydrate_sealed",
    "keys_for",
    "process_keys",
    "seal_events",
    "sealed_of_event",
    "strip_payload",
]
