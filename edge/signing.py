"""Client side of the hub's HTTP Message Signatures (RFC 9421) for edge uploads.

Each upload carries ``Content-Digest`` (RFC 9530, sha-256) and an Ed25519 signature
labelled ``hub`` that covers ``@method``, ``@target-uri`` and ``content-digest`` with
the ``created``, ``keyid``, ``alg`` and ``nonce`` parameters. Signature bases are built
by ``http_message_signatures``; this module only fixes the policy.
"""

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from http_message_signatures import ContentDigest, HTTPMessageSigner, MappingKeyResolver
from http_message_signatures.algorithms import ED25519

SIGNATURE_LABEL = "hub"
COVERED_COMPONENTS = ("@method", "@target-uri", "content-digest")
NONCE_BYTES = 16  # 128 bits


@dataclass(slots=True)
class _OutgoingRequest:
    """The minimal request view the signing library reads and writes."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)


def content_digest(body: bytes) -> str:
    """Return the RFC 9530 ``Content-Digest`` value (``sha-256=:<base64>:``) of ``body``."""
    return ContentDigest.create(body)


def generate_key() -> Ed25519PrivateKey:
    """Generate a fresh Ed25519 signing key."""
    return Ed25519PrivateKey.generate()


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """Return the SubjectPublicKeyInfo PEM of ``key`` (a private key yields its public half)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PublicFormat.SubjectPublicKeyInfo,
    ).decode("ascii")


def private_key_pem(key: Ed25519PrivateKey) -> str:
    """Return the unencrypted PKCS#8 PEM of ``key``; store it with restrictive permissions."""
    return key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    ).decode("ascii")


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    """Load an unencrypted PKCS#8 PEM Ed25519 private key; raise ValueError for anything else."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("The PEM does not hold an Ed25519 private key.")
    return key


class RequestSigner:
    """Sign edge upload requests with one Ed25519 key under one key id."""

    __slots__ = ("_key_id", "_signer")

    def __init__(self, *, key_id: str, private_key: Ed25519PrivateKey) -> None:
        """Bind the signer to ``key_id`` and ``private_key``; the library objects are reused."""
        if not key_id:
            raise ValueError("key_id must not be empty.")
        self._key_id = key_id
        resolver = MappingKeyResolver(public_keys={}, private_keys={key_id: private_key})
        self._signer = HTTPMessageSigner(signature_algorithm=ED25519, key_resolver=resolver)

    @property
    def key_id(self) -> str:
        """The key id placed in the ``keyid`` signature parameter."""
        return self._key_id

    def sign(
        self,
        *,
        method: str,
        url: str,
        body: bytes,
        created: datetime | None = None,
        nonce: str | None = None,
    ) -> dict[str, str]:
        """Return the ``Content-Digest``, ``Signature-Input`` and ``Signature`` headers to send."""
        if created is None:
            created = datetime.now(UTC)
        elif created.tzinfo is None:
            raise ValueError("created must be timezone-aware.")
        request = _OutgoingRequest(method=method, url=url)
        self._signer.sign(
            request,
            key_id=self._key_id,
            created=created,
            nonce=secrets.token_urlsafe(NONCE_BYTES) if nonce is None else nonce,
            label=SIGNATURE_LABEL,
            include_alg=True,
            covered_component_ids=COVERED_COMPONENTS,
            body=body,
        )
        return request.headers
