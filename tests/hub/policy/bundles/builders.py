"""Small bundles, keys and hand-made (malicious) archives for the bundle tests."""

import gzip
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hub.policy.bundles.archive import SIGNATURES, write_archive
from hub.policy.bundles.keys import VerifyKey
from hub.policy.bundles.signing import sign_bundle

POLICY = """package hub.authz

import rego.v1

default decision := {"allow": false, "reason": "role not allowed"}

decision := {"allow": true, "reason": "role allowed"} if {
	some role in input.subject.roles
	role in data.hub.allowed_roles
}
"""

TESTS = """package hub.authz_test

import rego.v1

import data.hub.authz

test_admin_is_allowed if {
	authz.decision.allow with input.subject as {"roles": ["admin"]}
}

test_agency_is_denied if {
	not authz.decision.allow with input.subject as {"roles": ["agency"]}
}
"""

# rego-cpp 1.5.2 aborts its process on a whole-input `with` here (see policies/README.md).
CRASHING_TEST = """
test_crashes_the_compiler if {
	authz.decision.allow with input as {"subject": {"roles": ["admin"]}}
}
"""

FAILING_TEST = """
test_everyone_is_allowed if {
	authz.decision.allow with input.subject as {"roles": []}
}
"""


def bundle_files(
    revision: str = "r1", *, failing: bool = False, roles: tuple[str, ...] = ("admin",)
) -> dict[str, bytes]:
    """A tiny valid bundle: one authz module, its tests, its data; `failing` adds a test
    that fails."""
    manifest = {"revision": revision, "roots": ["hub"]}
    return {
        ".manifest": msgspec.json.encode(manifest),
        "hub/authz.rego": POLICY.encode(),
        "hub/authz_test.rego": (TESTS + (FAILING_TEST if failing else "")).encode(),
        "hub/data.json": msgspec.json.encode({"allowed_roles": list(roles)}),
    }


def write_bundle_dir(directory: Path, files: dict[str, bytes]) -> Path:
    """Lay the files out as a bundle folder."""
    for name, data in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return directory


@dataclass(frozen=True)
class KeyPair:
    """A signing key as the admin holds it and as the hub trusts it."""

    kid: str
    private_pem: bytes
    public_pem: str

    @property
    def trusted(self) -> dict[str, VerifyKey]:
        """The hub's keys mapping trusting only this key."""
        return {self.kid: VerifyKey(public_key=self.public_pem)}


def make_key(kid: str = "admin-1", curve: ec.EllipticCurve | None = None) -> KeyPair:
    """A fresh EC key pair (P-256 unless told)."""
    key = ec.generate_private_key(curve or ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeyPair(kid=kid, private_pem=private, public_pem=public.decode())


def signed(files: dict[str, bytes], key: KeyPair) -> dict[str, bytes]:
    """The files plus their `.signatures.json`."""
    signature = sign_bundle(files, private_key_pem=key.private_pem, key_id=key.kid)
    return {**files, SIGNATURES: signature}


def signed_archive(files: dict[str, bytes], key: KeyPair) -> bytes:
    """A signed bundle archive."""
    return write_archive(signed(files, key))


def raw_tar_gz(*entries: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    """An archive written entry by entry, names and types exactly as given (no checks)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return gzip.compress(buffer.getvalue())


def entry(name: str, kind: bytes = tarfile.REGTYPE, *, link: str = "") -> tarfile.TarInfo:
    """A tar header of the given type."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info
