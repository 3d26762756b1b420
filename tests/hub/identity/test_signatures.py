"""Unit tests for hub.identity.signatures: every acceptance and rejection path."""

import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver
from http_message_signatures.algorithms import ED25519

from edge.signing import RequestSigner, content_digest, private_key_pem, public_key_pem
from hub.identity.signatures import (
    SignatureError,
    SignatureHeaders,
    VerifiedSignature,
    key_id_of,
    parse_signature_headers,
    read_key_id,
    verify_request,
)

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
URL = "https://hub.example.com/v1/uploads?camera=cam-7"
BODY = b'{"detections": [{"label": "person", "score": 0.91}]}'
KEY_ID = "edge-cam-7"
NONCE = "c2VjcmV0LW5vbmNlLTE"
REQUIRED = ("@method", "@target-uri", "content-digest")


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    """The edge device's key."""
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def other_key() -> Ed25519PrivateKey:
    """A key the hub does not associate with the device."""
    return Ed25519PrivateKey.generate()


def _sign(
    key: Ed25519PrivateKey,
    *,
    method: str = "POST",
    url: str = URL,
    body: bytes = BODY,
    created: datetime = NOW,
) -> dict[str, str]:
    """Sign the way edge devices do."""
    signer = RequestSigner(key_id=KEY_ID, private_key=key)
    return signer.sign(method=method, url=url, body=body, created=created, nonce=NONCE)


class _Message:
    """A bare request for signing with the library directly."""

    def __init__(self) -> None:
        self.method = "POST"
        self.url = URL
        self.headers: dict[str, str] = {
            "Content-Digest": content_digest(BODY),
            "Content-Type": "application/json",
        }


def _library_sign(
    key: Ed25519PrivateKey,
    *,
    components: Sequence[str] = REQUIRED,
    nonce: str | None = NONCE,
    expires: datetime | None = None,
    include_alg: bool = True,
) -> dict[str, str]:
    """Sign validly but with a custom policy, to test the verifier's policy checks."""
    resolver = MappingKeyResolver(public_keys={}, private_keys={KEY_ID: key})
    message = _Message()
    HTTPMessageSigner(signature_algorithm=ED25519, key_resolver=resolver).sign(
        message,
        key_id=KEY_ID,
        created=NOW,
        expires=expires,
        nonce=nonce,
        label="hub",
        include_alg=include_alg,
        covered_component_ids=components,
        use_existing_digest=True,
    )
    return message.headers


def _verify(
    key: Ed25519PrivateKey,
    headers: dict[str, str] | SignatureHeaders,
    *,
    method: str = "POST",
    url: str = URL,
    body: bytes = BODY,
    now: datetime = NOW,
    max_skew_seconds: int = 300,
) -> VerifiedSignature:
    """Verify against ``key``'s public half."""
    return verify_request(
        method=method,
        url=url,
        headers=headers,
        body=body,
        public_key=key.public_key(),
        now=now,
        max_skew_seconds=max_skew_seconds,
    )


def _rejects(code: str, key: Ed25519PrivateKey, headers: dict[str, str], **kw: object) -> None:
    """Assert that verification fails with ``code``."""
    with pytest.raises(SignatureError) as caught:
        _verify(key, headers, **kw)
    assert caught.value.code == code, caught.value.detail


def test_round_trip_returns_the_signed_metadata(key: Ed25519PrivateKey) -> None:
    verified = _verify(key, _sign(key))
    assert verified == VerifiedSignature(key_id=KEY_ID, created=NOW, nonce=NONCE, label="hub")


def test_round_trip_with_empty_body(key: Ed25519PrivateKey) -> None:
    assert _verify(key, _sign(key, body=b""), body=b"").key_id == KEY_ID


def test_components_in_any_order_and_alg_omitted_are_accepted(key: Ed25519PrivateKey) -> None:
    headers = _library_sign(key, components=REQUIRED[::-1], include_alg=False)
    assert "alg=" not in headers["Signature-Input"]
    assert _verify(key, headers).nonce == NONCE


@pytest.mark.parametrize("case", [str.lower, str.upper, str.title])
def test_header_names_are_case_insensitive(key: Ed25519PrivateKey, case: object) -> None:
    headers = {case(name): value for name, value in _sign(key).items()}
    assert read_key_id(headers) == KEY_ID
    assert _verify(key, headers).key_id == KEY_ID


def test_extra_covered_header_is_verified(key: Ed25519PrivateKey) -> None:
    headers = _library_sign(key, components=[*REQUIRED, "content-type"])
    assert _verify(key, headers).key_id == KEY_ID
    _rejects("signature_invalid", key, {**headers, "Content-Type": "text/plain"})
    del headers["Content-Type"]
    _rejects("signature_invalid", key, headers)


def test_unrelated_headers_are_ignored(key: Ed25519PrivateKey) -> None:
    headers = {"Content-Type": "application/json", "X-Trace": "1", **_sign(key)}
    assert _verify(key, headers).label == "hub"


def test_read_key_id_returns_the_unverified_keyid(key: Ed25519PrivateKey) -> None:
    assert read_key_id(_sign(key)) == KEY_ID


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "signature_missing"),
        ({"Signature-Input": "%%%"}, "signature_malformed"),
        ({"Signature-Input": 'hub=("@method");created=1'}, "signature_components"),
        ({"Signature-Input": 'hub=("@method");keyid=7'}, "signature_malformed"),
    ],
)
def test_read_key_id_rejections(headers: dict[str, str], code: str) -> None:
    with pytest.raises(SignatureError) as caught:
        read_key_id(headers)
    assert caught.value.code == code


@pytest.mark.parametrize(
    ("removed", "code"),
    [
        ("Signature", "signature_missing"),
        ("Signature-Input", "signature_missing"),
        ("Content-Digest", "digest_missing"),
    ],
)
def test_missing_header(key: Ed25519PrivateKey, removed: str, code: str) -> None:
    headers = _sign(key)
    del headers[removed]
    _rejects(code, key, headers)


def test_no_headers_at_all(key: Ed25519PrivateKey) -> None:
    _rejects("signature_missing", key, {})


def test_tampered_body_is_a_digest_mismatch(key: Ed25519PrivateKey) -> None:
    _rejects("digest_mismatch", key, _sign(key), body=BODY + b" ")


def test_digest_forged_for_tampered_body_breaks_the_signature(key: Ed25519PrivateKey) -> None:
    tampered = BODY.replace(b"person", b"nobody")
    headers = {**_sign(key), "Content-Digest": content_digest(tampered)}
    _rejects("signature_invalid", key, headers, body=tampered)


@pytest.mark.parametrize(
    "digest",
    [
        "garbage(",
        "sha-512=:" + "A" * 88 + ":",
        "sha-256=:AAAA:",
        'sha-256="not bytes"',
    ],
)
def test_malformed_or_unsupported_digest_is_a_mismatch(key: Ed25519PrivateKey, digest: str) -> None:
    _rejects("digest_mismatch", key, {**_sign(key), "Content-Digest": digest})


def test_wrong_key_is_invalid(key: Ed25519PrivateKey, other_key: Ed25519PrivateKey) -> None:
    _rejects("signature_invalid", other_key, _sign(key))


@pytest.mark.parametrize("method", ["PUT", "GET", "post"])
def test_different_method_is_invalid(key: Ed25519PrivateKey, method: str) -> None:
    _rejects("signature_invalid", key, _sign(key), method=method)


@pytest.mark.parametrize(
    "url",
    [
        "https://hub.example.com/v1/uploads?camera=cam-8",
        "https://hub.example.com/v1/uploads",
        "https://hub.example.com/v2/uploads?camera=cam-7",
        "https://evil.example.com/v1/uploads?camera=cam-7",
        "http://hub.example.com/v1/uploads?camera=cam-7",
        "https://hub.example.com:8443/v1/uploads?camera=cam-7",
        "not a url",
    ],
)
def test_different_target_uri_is_invalid(key: Ed25519PrivateKey, url: str) -> None:
    _rejects("signature_invalid", key, _sign(key), url=url)


@pytest.mark.parametrize("offset", [-301, 301, -86400, 86400])
def test_created_outside_the_skew_is_expired(key: Ed25519PrivateKey, offset: int) -> None:
    _rejects("signature_expired", key, _sign(key, created=NOW + timedelta(seconds=offset)))


@pytest.mark.parametrize("offset", [-300, 300, 0])
def test_created_at_the_skew_edge_is_accepted(key: Ed25519PrivateKey, offset: int) -> None:
    created = NOW + timedelta(seconds=offset)
    assert _verify(key, _sign(key, created=created)).created == created


def test_custom_skew_is_honoured(key: Ed25519PrivateKey) -> None:
    headers = _sign(key, created=NOW - timedelta(seconds=31))
    _rejects("signature_expired", key, headers, max_skew_seconds=30)
    assert _verify(key, headers, max_skew_seconds=31).key_id == KEY_ID


def test_passed_expires_is_expired(key: Ed25519PrivateKey) -> None:
    headers = _library_sign(key, expires=NOW - timedelta(seconds=1))
    _rejects("signature_expired", key, headers)


def test_missing_nonce_is_not_covered(key: Ed25519PrivateKey) -> None:
    _rejects("signature_components", key, _library_sign(key, nonce=None))


@pytest.mark.parametrize("dropped", REQUIRED)
def test_component_not_covered(key: Ed25519PrivateKey, dropped: str) -> None:
    components = [name for name in REQUIRED if name != dropped]
    _rejects("signature_components", key, _library_sign(key, components=components))


def test_digest_covered_only_with_parameters_does_not_count(key: Ed25519PrivateKey) -> None:
    components = ["@method", "@target-uri", '"content-digest";sf']
    _rejects("signature_components", key, _library_sign(key, components=components))


@pytest.mark.parametrize("param", ["created", "keyid", "nonce"])
def test_stripped_parameter_is_not_covered(key: Ed25519PrivateKey, param: str) -> None:
    headers = _sign(key)
    kept = [p for p in headers["Signature-Input"].split(";") if not p.startswith(f"{param}=")]
    _rejects("signature_components", key, {**headers, "Signature-Input": ";".join(kept)})


@pytest.mark.parametrize(
    "signature_input",
    [
        "garbage(",
        "",
        "hub",
        'hub=:AAAA:;created=1;keyid="k";nonce="n"',
        'hub=("@method");created=1;keyid="k";nonce="n", other=("@method")',
        'hub=("@method"), hub=("@method")',
        'hub=("@method" "@target-uri" "content-digest");created="1";keyid="k";nonce="n"',
        'hub=("@method" "@target-uri" "content-digest");created=1;keyid="";nonce="n"',
        'hub=("@method" "@target-uri" "content-digest");created=?1;keyid="k";nonce="n"',
        'hub=("@method");created=1;keyid="\u00e9"',
    ],
)
def test_garbage_signature_input_is_malformed(key: Ed25519PrivateKey, signature_input: str) -> None:
    _rejects("signature_malformed", key, {**_sign(key), "Signature-Input": signature_input})


@pytest.mark.parametrize(
    "signature", ["garbage(", 'hub="text"', "other=:AAAA:", "hub=:AAAA:, x=:AA:"]
)
def test_garbage_signature_is_malformed(key: Ed25519PrivateKey, signature: str) -> None:
    _rejects("signature_malformed", key, {**_sign(key), "Signature": signature})


def test_flipped_signature_bytes_are_invalid(key: Ed25519PrivateKey) -> None:
    headers = _sign(key)
    flipped = "hub=:" + ("B" if headers["Signature"][5] == "A" else "A") + headers["Signature"][6:]
    _rejects("signature_invalid", key, {**headers, "Signature": flipped})


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('alg="ed25519"', 'alg="hmac-sha256"'),
        (f'nonce="{NONCE}"', 'nonce="replayed"'),
        (f'keyid="{KEY_ID}"', 'keyid="someone-else"'),
        (f'nonce="{NONCE}"', f'nonce="{NONCE}";tag="x"'),
        (f'nonce="{NONCE}"', f'nonce="{NONCE}";foo="x"'),
    ],
)
def test_edited_signature_params_are_invalid(key: Ed25519PrivateKey, old: str, new: str) -> None:
    headers = _sign(key)
    edited = headers["Signature-Input"].replace(old, new)
    assert edited != headers["Signature-Input"]
    _rejects("signature_invalid", key, {**headers, "Signature-Input": edited})


def test_duplicate_signature_headers_in_different_case_are_malformed(
    key: Ed25519PrivateKey,
) -> None:
    headers = {**_sign(key), "signature": "hub=:AAAA:"}
    _rejects("signature_malformed", key, headers)


def test_error_detail_leaks_no_key_or_body(key: Ed25519PrivateKey) -> None:
    secrets = [private_key_pem(key), public_key_pem(key), BODY.decode(), NONCE]
    secrets.append(hashlib.sha256(BODY).hexdigest())
    failures = [
        {"body": BODY + b"!"},
        {"body": BODY, "method": "PUT"},
        {"body": BODY, "now": NOW + timedelta(hours=1)},
    ]
    for kwargs in failures:
        with pytest.raises(SignatureError) as caught:
            _verify(key, _sign(key), **kwargs)
        text = f"{caught.value} {caught.value.detail}"
        assert not any(secret in text for secret in secrets)
        assert caught.value.detail.endswith(".")


def test_naive_now_is_a_programming_error(key: Ed25519PrivateKey) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        _verify(key, _sign(key), now=datetime(2025, 1, 2, 3, 4, 5))  # noqa: DTZ001


def test_headers_parsed_once_verify_exactly_as_raw_headers(
    key: Ed25519PrivateKey, other_key: Ed25519PrivateKey
) -> None:
    headers = _sign(key)
    parsed = parse_signature_headers(headers)
    assert key_id_of(parsed) == read_key_id(headers) == KEY_ID
    assert _verify(key, parsed) == _verify(key, headers)
    # Parsing checks nothing: every check still runs on the parsed form.
    refusals: list[tuple[Callable[[], object], str]] = [
        (lambda: _verify(other_key, parsed), "signature_invalid"),
        (lambda: _verify(key, parsed, body=BODY + b" "), "digest_mismatch"),
        (lambda: _verify(key, parsed, now=NOW + timedelta(hours=1)), "signature_expired"),
    ]
    for attempt, code in refusals:
        with pytest.raises(SignatureError) as refused:
            attempt()
        assert refused.value.code == code
