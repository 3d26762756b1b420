"""Alerts signed by `sign_alert` (lxml C14N + cryptography) are what signxml makes and what
signxml's verifier accepts, for EC and RSA keys; a changed alert is refused."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureConstructionMethod
from signxml.signer import XMLSigner

from adapters.xml.signing import (
    C14N,
    DS,
    AlertSignatureError,
    SigningIdentity,
    load_identity,
    sign_alert,
    verify_alert,
)

ALERT = (
    b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>a-1</identifier>'
    b"<sender>hub</sender><info><event>plate &amp; vehicle</event>"
    b'<parameter><valueName>record</valueName><value>{"x":"&lt;1&gt;"}</value></parameter>'
    b"</info></alert>"
)


Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def new_key(kind: str) -> Key:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def certificate(key: Key) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def identity(tmp_path: Path, key: Key) -> SigningIdentity:
    key_file, cert_file = tmp_path / "k.pem", tmp_path / "c.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_file.write_bytes(certificate(key).public_bytes(serialization.Encoding.PEM))
    return load_identity(key_file, cert_file)


def signxml_signed(who: SigningIdentity) -> etree._Element:
    signer = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=who.method,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=C14N,
    )
    signed: etree._Element = signer.sign(etree.fromstring(ALERT), key=who.key, cert=[who.cert])
    return signed


def without_signature_value(root: etree._Element) -> bytes:
    for value in root.iter(f"{{{DS}}}SignatureValue"):
        value.text = ""  # ECDSA signatures are randomised; everything else must match
    canonical: bytes = etree.tostring(root, method="c14n", exclusive=True)
    return canonical


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_signed_alert_is_what_signxml_makes_and_verifies(tmp_path: Path, kind: str) -> None:
    who = identity(tmp_path, new_key(kind))
    ours = sign_alert(etree.fromstring(ALERT), who)
    reparsed = etree.fromstring(etree.tostring(ours))

    assert etree.tostring(verify_alert(reparsed, who.cert)) == etree.tostring(
        etree.fromstring(ALERT)
    )
    assert without_signature_value(ours) == without_signature_value(signxml_signed(who))


def test_a_changed_alert_is_refused(tmp_path: Path) -> None:
    who = identity(tmp_path, new_key("ec"))
    text = etree.tostring(sign_alert(etree.fromstring(ALERT), who))

    with pytest.raises(AlertSignatureError):
        verify_alert(etree.fromstring(text.replace(b"a-1", b"a-2")), who.cert)


def test_each_alert_gets_its_own_signature_element(tmp_path: Path) -> None:
    who = identity(tmp_path, new_key("ec"))
    first = sign_alert(etree.fromstring(ALERT), who)
    second = sign_alert(etree.fromstring(ALERT.replace(b"a-1", b"a-2")), who)

    digests = [root.findtext(f".//{{{DS}}}DigestValue") for root in (first, second)]
    assert digests[0] != digests[1]
    assert len(who.template.findtext(f".//{{{DS}}}DigestValue") or "") == 0
    verify_alert(etree.fromstring(etree.tostring(first)), who.cert)
