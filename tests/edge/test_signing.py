"""Unit tests for edge.signing: digests, keys and RFC 9421 request signing."""

import base64
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import http_sf
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.signing import (
    RequestSigner,
    content_digest,
    generate_key,
    load_private_key,
    private_key_pem,
    public_key_pem,
)

URL = "https://hub.example.com/v1/uploads?camera=cam-7"
BODY = b'{"detections": [{"label": "person", "score": 0.91}]}'
KEY_ID = "edge-cam-7"
CREATED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    """One Ed25519 key shared by the module's tests."""
    return generate_key()


@pytest.fixture
def signer(key: Ed25519PrivateKey) -> RequestSigner:
    """A signer bound to the module key."""
    return RequestSigner(key_id=KEY_ID, private_key=key)


def _parse_input(headers: dict[str, str]) -> tuple[str, list[Any], dict[str, Any]]:
    """Return the label, covered items and parameters of the Signature-Input header."""
    parsed: Any = http_sf.parse(headers["Signature-Input"].encode(), tltype="dictionary")
    assert isinstance(parsed, dict)
    ((label, (items, params)),) = parsed.items()
    return label, items, params


def _signature_base(method: str, url: str, headers: dict[str, str]) -> bytes:
    """Build the RFC 9421 signature base independently, as a test oracle."""
    sig_params = headers["Signature-Input"].removeprefix("hub=")
    lines = [
        f'"@method": {method}',
        f'"@target-uri": {url}',
        f'"content-digest": {headers["Content-Digest"]}',
        f'"@signature-params": {sig_params}',
    ]
    return "\n".join(lines).encode()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"),
        (b'{"hello": "world"}', "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"),
    ],
)
def test_content_digest_matches_rfc_9530(body: bytes, expected: str) -> None:
    assert content_digest(body) == expected


def test_sign_returns_exactly_the_three_headers(signer: RequestSigner) -> None:
    headers = signer.sign(method="POST", url=URL, body=BODY, created=CREATED, nonce="n-1")
    assert set(headers) == {"Content-Digest", "Signature-Input", "Signature"}
    assert headers["Content-Digest"] == content_digest(BODY)
    assert headers["Signature"].startswith("hub=:")


def test_signature_input_covers_the_required_components_and_params(
    signer: RequestSigner,
) -> None:
    headers = signer.sign(method="POST", url=URL, body=BODY, created=CREATED, nonce="n-1")
    label, items, params = _parse_input(headers)
    assert label == "hub"
    assert [(value, dict(p)) for value, p in items] == [
        ("@method", {}),
        ("@target-uri", {}),
        ("content-digest", {}),
    ]
    assert list(params) == ["created", "keyid", "alg", "nonce"]
    assert params == {
        "created": int(CREATED.timestamp()),
        "keyid": KEY_ID,
        "alg": "ed25519",
        "nonce": "n-1",
    }


def test_signature_verifies_over_an_independent_rfc_9421_base(
    signer: RequestSigner, key: Ed25519PrivateKey
) -> None:
    headers = signer.sign(method="PUT", url=URL, body=BODY, created=CREATED, nonce="abc")
    signature: Any = http_sf.parse(headers["Signature"].encode(), tltype="dictionary")
    assert isinstance(signature, dict)
    raw = signature["hub"][0]
    assert isinstance(raw, bytes)
    key.public_key().verify(raw, _signature_base("PUT", URL, headers))
    with pytest.raises(InvalidSignature):
        key.public_key().verify(raw, _signature_base("POST", URL, headers))


def test_default_nonce_is_random_128_bit_urlsafe(signer: RequestSigner) -> None:
    nonces = {
        _parse_input(signer.sign(method="POST", url=URL, body=BODY))[2]["nonce"] for _ in range(20)
    }
    assert len(nonces) == 20
    for nonce in nonces:
        assert len(base64.urlsafe_b64decode(nonce + "==")) == 16
        assert set(nonce) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_default_created_is_now(signer: RequestSigner) -> None:
    before = int(datetime.now(UTC).timestamp())
    created = _parse_input(signer.sign(method="POST", url=URL, body=BODY))[2]["created"]
    assert before <= created <= before + 2


def test_explicit_created_in_another_timezone_is_the_same_instant(signer: RequestSigner) -> None:
    shifted = CREATED.astimezone(timezone(timedelta(hours=5, minutes=30)))
    params = _parse_input(signer.sign(method="POST", url=URL, body=BODY, created=shifted))[2]
    assert params["created"] == int(CREATED.timestamp())


def test_naive_created_is_rejected(signer: RequestSigner) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        signer.sign(method="POST", url=URL, body=BODY, created=datetime(2025, 1, 1))  # noqa: DTZ001


def test_same_inputs_give_the_same_signature(signer: RequestSigner) -> None:
    first = signer.sign(method="POST", url=URL, body=BODY, created=CREATED, nonce="n")
    second = signer.sign(method="POST", url=URL, body=BODY, created=CREATED, nonce="n")
    third = signer.sign(method="POST", url=URL, body=BODY, created=CREATED, nonce="m")
    assert first == second
    assert first["Signature"] != third["Signature"]


def test_empty_key_id_is_rejected(key: Ed25519PrivateKey) -> None:
    with pytest.raises(ValueError, match="key_id"):
        RequestSigner(key_id="", private_key=key)


def test_private_key_pem_round_trips(key: Ed25519PrivateKey) -> None:
    pem = private_key_pem(key)
    assert pem.startswith("-----BEGIN PRIVATE KEY-----")
    loaded = load_private_key(pem.encode())
    assert public_key_pem(loaded) == public_key_pem(key)


def test_public_key_pem_accepts_private_or_public_key(key: Ed25519PrivateKey) -> None:
    pem = public_key_pem(key)
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert public_key_pem(key.public_key()) == pem
    loaded = serialization.load_pem_public_key(pem.encode())
    assert loaded == key.public_key()


def test_load_private_key_rejects_other_key_types() -> None:
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    with pytest.raises(ValueError, match="Ed25519"):
        load_private_key(other)


def test_generate_key_gives_distinct_keys() -> None:
    assert public_key_pem(generate_key()) != public_key_pem(generate_key())
