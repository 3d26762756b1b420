"""A signing key and self-signed certificate for an XML agency that brings none of its own.

The agency is given the certificate out of band and pins it; nothing here ever replaces a
key that already exists, because a silently new key would make every later alert fail the
agency's signature check.
"""

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hub.kit.keyfiles import make_private_dirs

# Long enough for a demo or a pilot; a production agency brings a certificate from its own CA.
CERT_VALIDITY = timedelta(days=3 * 365)
# Verifiers compare against their own clock; start a little in the past so skew does not bite.
CLOCK_SKEW = timedelta(minutes=5)


def generate_signing_identity(directory: Path, common_name: str) -> tuple[Path, Path]:
    """Write `<name>.key.pem` (0600) and `<name>.cert.pem` into `directory`; return both paths.

    ECDSA P-256 keeps signing cheap on the delivery path (RSA-2048 signs ~30 times slower).
    Raises `FileExistsError` when either file is already there, leaving both untouched.
    """
    stem = _file_stem(common_name)
    key_path = directory / f"{stem}.key.pem"
    cert_path = directory / f"{stem}.cert.pem"
    for path in (key_path, cert_path):
        if path.exists():
            raise FileExistsError(f"{path} already exists; refusing to overwrite it")
    make_private_dirs(directory)  # parents too: `mkdir(parents=True)` made them 0755
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cert_pem = _self_signed(key, common_name).public_bytes(serialization.Encoding.PEM)
    _write_new(key_path, key_pem, mode=0o600)
    try:
        _write_new(cert_path, cert_pem, mode=0o644)
    except FileExistsError:
        key_path.unlink()  # ours, written a moment ago: do not leave half an identity behind
        raise
    return key_path, cert_path


def _file_stem(common_name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", common_name).strip("-.")
    if not stem:
        raise ValueError(f"common name {common_name!r} gives no usable file name")
    return stem


def _self_signed(key: ec.EllipticCurvePrivateKey, common_name: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = datetime.now(UTC) - CLOCK_SKEW
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )


def _write_new(path: Path, data: bytes, *, mode: int) -> None:
    # O_EXCL makes "never overwrite" atomic, and the mode applies from the first byte written.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    os.fchmod(fd, mode)  # the umask may have taken bits away; 0600 must be exactly that
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
