"""Enveloped XML-DSig over a whole CAP alert: signing for the adapter, checking for receivers.

The signature references the whole document (URI ""), so a receiver that reads only what
`verify_alert` hands back reads only signed content; that is what defeats signature-wrapping.

Signing is done here with lxml's exclusive C14N and `cryptography`, filling a `ds:Signature`
whose fixed parts (algorithms, certificate) are made once per identity: signxml re-derived
all of it per alert, at about 0.25 ms of a delivery's CPU. The result is what signxml makes
(same elements, algorithms and digest; tested), and signxml still checks signatures.
"""

import base64
import copy
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import exceptions as crypto_exceptions
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from lxml import etree
from lxml.builder import ElementMaker
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureMethod,
)
from signxml.exceptions import SignXMLException
from signxml.verifier import SignatureConfiguration, XMLVerifier

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

# Exclusive c14n keeps the signature valid when the alert is later wrapped in an envelope
# (EDXL-DE, SOAP) that brings namespace declarations of its own.
C14N = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0
ACCEPTED_METHODS = frozenset({SignatureMethod.RSA_SHA256, SignatureMethod.ECDSA_SHA256})
DS = "http://www.w3.org/2000/09/xmldsig#"
_DS = ElementMaker(namespace=DS, nsmap={"ds": DS})
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"


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
    # The ds:Signature every alert of this identity carries, values left empty.
    template: etree._Element = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "template", _signature_template(self.cert, self.method))


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
    """The alert with an enveloped `ds:Signature` appended as its last child (exclusive C14N,
    SHA-256; the digest is taken before the signature is appended, which is what the
    enveloped-signature transform undoes when checking)."""
    digest = hashlib.sha256(etree.tostring(root, method="c14n", exclusive=True)).digest()
    signature = copy.deepcopy(identity.template)
    signed_info, value = signature[0], signature[1]
    signed_info[2][2].text = _b64(digest)  # Reference / DigestValue, as the template has it
    root.append(signature)
    # SignedInfo is canonicalised where it now sits (exclusive: only ds is in scope).
    value.text = _b64(_sign(identity, etree.tostring(signed_info, method="c14n", exclusive=True)))
    return root


def _sign(identity: SigningIdentity, data: bytes) -> bytes:
    key = identity.key
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    # XML-DSig wants ECDSA as r || s, each the curve's size, not DER.
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    size = (key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def _signature_template(cert: x509.Certificate, method: SignatureMethod) -> etree._Element:
    c14n = C14N.value
    return _DS.Signature(
        _DS.SignedInfo(
            _DS.CanonicalizationMethod(Algorithm=c14n),
            _DS.SignatureMethod(Algorithm=method.value),
            _DS.Reference(
                _DS.Transforms(_DS.Transform(Algorithm=ENVELOPED), _DS.Transform(Algorithm=c14n)),
                _DS.DigestMethod(Algorithm=DigestAlgorithm.SHA256.value),
                _DS.DigestValue(),
                URI="",
            ),
        ),
        _DS.SignatureValue(),
        _DS.KeyInfo(_DS.X509Data(_DS.X509Certificate(_pem_body(cert)))),
    )


def _pem_body(cert: x509.Certificate) -> str:
    """The certificate's base64 in 64-character lines, as signxml writes it."""
    lines = cert.public_bytes(serialization.Encoding.PEM).decode().splitlines(keepends=True)
    return "".join(lines[1:-1])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


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
