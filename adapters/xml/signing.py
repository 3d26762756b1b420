"""Enveloped XML-DSig over a whole CAP alert: signing for the adapter, checking for receivers.

The signature references the whole document (URI ""), so a receiver that reads only what
`verify_alert` hands back reads only signed content; that is what defeats signature-wrapping.
"""

from dataclasses import dataclass
from pathlib import Path

from cryptography import exceptions as crypto_exceptions
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.exceptions import SignXMLException
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, XMLVerifier

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

# Exclusive c14n keeps the signature valid when the alert is later wrapped in an envelope
# (EDXL-DE, SOAP) that brings namespace declarations of its own.
C14N = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0
ACCEPTED_METHODS = frozenset({SignatureMethod.RSA_SHA256, SignatureMethod.ECDSA_SHA256})


class SigningKeyError(ValueError):
    """A key or certificate file is missing, unreadable or does not fit; `field` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


class AlertSignatureError(ValueError):
    """A document's signature is missing, malformed, or not made by the trusted key."""


@dataclass(frozen=True, slots=True)
class SigningIdentity:
    """A loaded private key, its certificate, and the signature method that fits the key."""

    key: SigningKey
    cert: x509.Certificate
    method: SignatureMethod


def load_identity(key_file: Path, cert_file: Path) -> SigningIdentity:
    """Read and cross-check a PEM key and certificate (RSA or EC P-256/384/521)."""
    key = _load_key(key_file)
    cert = _load_cert(cert_file)
    if cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise SigningKeyError("signing_cert_file", "certificate does not match signing_key_file")
    method = (
        SignatureMethod.RSA_SHA256
        if isinstance(key, rsa.RSAPrivateKey)
        else SignatureMethod.ECDSA_SHA256
    )
    return SigningIdentity(key=key, cert=cert, method=method)


def _load_key(path: Path) -> SigningKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise SigningKeyError("signing_key_file", f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, TypeError):
        raise SigningKeyError("signing_key_file", f"{path} is not an unencrypted PEM key") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise SigningKeyError("signing_key_file", "only RSA and EC keys can sign XML here")
    return key


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as exc:
        raise SigningKeyError("signing_cert_file", f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise SigningKeyError("signing_cert_file", f"{path} is not a PEM certificate") from None


def sign_alert(root: etree._Element, identity: SigningIdentity) -> etree._Element:
    """The alert with an enveloped `ds:Signature` appended as its last child."""
    signer = XMLSigner(  # one per call: signers keep per-call state and this runs in threads
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=identity.method,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=C14N,
    )
    signed: etree._Element = signer.sign(root, key=identity.key, cert=[identity.cert])
    return signed


def verify_alert(root: etree._Element, trusted: x509.Certificate) -> etree._Element:
    """The signed content of `root` (signature removed), when the trusted key signed all of it."""
    config = SignatureConfiguration(
        location="./",  # enveloped at the top level, nowhere else
        expect_references=1,
        signature_methods=ACCEPTED_METHODS,
    )
    try:
        result = XMLVerifier().verify(root, x509_cert=trusted, expect_config=config)
    # ValueError: malformed signature parts (bad base64, unknown algorithm URIs).
    except (SignXMLException, crypto_exceptions.InvalidSignature, ValueError) as exc:
        raise AlertSignatureError(str(exc)) from None
    signed = result.signed_xml if not isinstance(result, list) else None
    if signed is None or signed.tag != root.tag:
        raise AlertSignatureError("the signature does not cover the whole alert")
    return signed
