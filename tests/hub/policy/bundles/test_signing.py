"""`.signatures.json` in OPA's format: signed bundles verify, anything altered does not."""

import base64
import hashlib
import json

import msgspec
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hub.policy.bundles.archive import SIGNATURES
from hub.policy.bundles.errors import BundleError
from hub.policy.bundles.hashing import canonical_json, file_digest
from hub.policy.bundles.keys import VerifyKey
from hub.policy.bundles.signing import sign_bundle, verify_bundle
from tests.hub.policy.bundles.builders import bundle_files, make_key, signed

KEY = make_key("admin-1")


def invalid(files: dict[str, bytes], keys: dict[str, VerifyKey], code: str) -> str:
    with pytest.raises(BundleError) as caught:
        verify_bundle(files, keys=keys, required=True)
    assert caught.value.code == code, caught.value.detail
    return caught.value.detail


def claims(files: dict[str, bytes]) -> tuple[dict[str, object], dict[str, object]]:
    token = json.loads(files[SIGNATURES])["signatures"][0]
    header, payload, _ = token.split(".")
    decode = lambda part: json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # noqa: E731
    return decode(header), decode(payload)


def test_a_signed_bundle_verifies() -> None:
    check = verify_bundle(signed(bundle_files(), KEY), keys=KEY.trusted, required=True)
    assert check is not None
    assert (check.key_id, check.algorithm, check.files) == ("admin-1", "ES256", 4)


def test_the_signature_has_opas_shape() -> None:
    files = signed(bundle_files(), KEY)
    assert list(json.loads(files[SIGNATURES])) == ["signatures"]
    header, payload = claims(files)
    assert header == {"alg": "ES256", "typ": "JWT", "kid": "admin-1"}
    assert payload["keyid"] == "admin-1"
    listed = payload["files"]
    assert isinstance(listed, list)
    assert [f["name"] for f in listed] == sorted(bundle_files())
    assert {f["algorithm"] for f in listed} == {"SHA-256"}
    rego = next(f for f in listed if f["name"] == "hub/authz.rego")
    assert rego["hash"] == hashlib.sha256(bundle_files()["hub/authz.rego"]).hexdigest()


def test_structured_files_hash_their_canonical_json_like_opa() -> None:
    # Keys sorted, no whitespace, number literals kept, no HTML escaping, U+2028 escaped.
    data = b'{"b": [1.50, {"z": true, "a": null}], "a": "<&>\xe2\x80\xa8\\u00e9"}'
    assert canonical_json("data.json", data) == (
        '{"a":"<&>\\u2028\u00e9","b":[1.50,{"a":null,"z":true}]}'.encode()
    )
    spaced = b'{\n  "a" : "<&>\\u2028\xc3\xa9",\n "b": [1.50, {"a": null, "z": true}]}'
    assert file_digest("x/data.json", data) == file_digest("x/data.json", spaced)
    # Only OPA's structured names are parsed; any other file is hashed byte for byte.
    assert file_digest("x/other.json", data) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("name", "content", "algorithm", "digest"),
    [  # digests from OPA's own bundle/sign_test.go (TestGenerateSignedToken)
        (".manifest", b'{"revision": "quickbrownfaux"}', "md5", "a005c38a509dc2d5a7407b9494efb2ad"),
        ("a/b/d/data.json", b"true", "md5", "b326b5062b2f0e69046810717534cb09"),
        (
            "data.json",
            b'{"x": {"y": true}, "a": {"b": {"z": true}}}',
            "md5",
            "36669864a622563256817033b1fc53db",
        ),
        (
            "a/b/c/data.json",
            b"[1,2,3]",
            "sha512",
            "60f7b5dc86ded48785436192a08dbfd04894d7f1b417c4f8d3714679a7f78cb3"
            "c833f16a8559a1cf1f32968747dc1d95ef34826263dacf125ded8f5c374be4c0",
        ),
    ],
)
def test_canonical_json_matches_opas_test_vectors(
    name: str, content: bytes, algorithm: str, digest: str
) -> None:
    assert hashlib.new(algorithm, canonical_json(name, content)).hexdigest() == digest


def test_reformatting_data_json_keeps_the_signature_valid() -> None:
    files = signed(bundle_files(), KEY)
    pretty = msgspec.json.format(files["hub/data.json"], indent=4)
    assert pretty != files["hub/data.json"]
    assert verify_bundle(files | {"hub/data.json": pretty}, keys=KEY.trusted, required=True)


def test_a_tampered_file_is_refused() -> None:
    files = signed(bundle_files(), KEY)
    files["hub/authz.rego"] += b"\n# backdoor\n"
    assert "hub/authz.rego" in invalid(files, KEY.trusted, "bundle_signature_invalid")


def test_an_added_file_is_refused() -> None:
    files = signed(bundle_files(), KEY) | {"hub/extra.rego": b"package hub.extra\n"}
    assert "not covered" in invalid(files, KEY.trusted, "bundle_signature_invalid")


def test_a_removed_file_is_refused() -> None:
    files = signed(bundle_files(), KEY)
    del files["hub/authz_test.rego"]
    assert "missing from the bundle" in invalid(files, KEY.trusted, "bundle_signature_invalid")


def test_an_unknown_key_id_is_refused() -> None:
    files = signed(bundle_files(), make_key("someone-else"))
    assert "not a trusted" in invalid(files, KEY.trusted, "bundle_signature_invalid")


def test_a_signature_by_the_wrong_key_is_refused() -> None:
    impostor = make_key("admin-1")  # same key id, different key
    files = signed(bundle_files(), impostor)
    assert "does not verify" in invalid(files, KEY.trusted, "bundle_signature_invalid")


def test_keys_rotate_by_key_id() -> None:
    old, new = make_key("2025"), make_key("2026")
    keys = old.trusted | new.trusted
    for key in (old, new):
        check = verify_bundle(signed(bundle_files(), key), keys=keys, required=True)
        assert check is not None
        assert check.key_id == key.kid


def test_the_algorithm_follows_the_key_not_the_token() -> None:
    p384 = make_key("p384", ec.SECP384R1())
    files = signed(bundle_files(), p384)
    assert claims(files)[0]["alg"] == "ES384"
    assert verify_bundle(files, keys=p384.trusted, required=True) is not None
    # A P-256 key under the same id only accepts ES256 tokens.
    mismatched = {"p384": VerifyKey(public_key=KEY.public_pem)}
    assert "ES256" in invalid(files, mismatched, "bundle_signature_invalid")


def test_rsa_keys_sign_rs256_as_opa_sign_does_by_default() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    files = bundle_files()
    files[SIGNATURES] = sign_bundle(files, private_key_pem=private, key_id="rsa")
    assert claims(files)[0]["alg"] == "RS256"
    check = verify_bundle(files, keys={"rsa": VerifyKey(public_key=public.decode())}, required=True)
    assert check is not None
    assert check.algorithm == "RS256"


def test_unsigned_is_refused_when_required_and_allowed_otherwise() -> None:
    files = bundle_files()
    assert "signed bundles are required" in invalid(files, KEY.trusted, "bundle_unsigned")
    assert verify_bundle(files, keys=KEY.trusted, required=False) is None


def test_a_present_signature_is_checked_even_when_not_required() -> None:
    files = signed(bundle_files(), KEY)
    files["hub/data.json"] = b'{"allowed_roles": ["admin", "agency"]}'
    with pytest.raises(BundleError) as caught:
        verify_bundle(files, keys=KEY.trusted, required=False)
    assert caught.value.code == "bundle_signature_invalid"


@pytest.mark.parametrize(
    "document",
    [
        b"not json",
        b'{"signatures": []}',
        b'{"signatures": ["a.b.c", "d.e.f"]}',
        b'{"signatures": ["abc"]}',
    ],
)
def test_a_malformed_signatures_file_is_refused(document: bytes) -> None:
    invalid(bundle_files() | {SIGNATURES: document}, KEY.trusted, "bundle_signature_invalid")


def test_a_scope_must_match_the_keys_scope() -> None:
    files = bundle_files()
    scoped = files | {
        SIGNATURES: sign_bundle(
            files, private_key_pem=KEY.private_pem, key_id=KEY.kid, scope="write"
        )
    }
    assert "scope" in invalid(scoped, KEY.trusted, "bundle_signature_invalid")
    keys = {KEY.kid: VerifyKey(public_key=KEY.public_pem, scope="write")}
    assert verify_bundle(scoped, keys=keys, required=True) is not None


def test_weak_file_hash_algorithms_are_refused() -> None:
    with pytest.raises(BundleError):
        file_digest("a.rego", b"x", algorithm="MD5")


def test_sign_refuses_a_key_it_cannot_use() -> None:
    with pytest.raises(BundleError):
        sign_bundle(bundle_files(), private_key_pem=b"-----BEGIN NOTHING-----", key_id="k")
