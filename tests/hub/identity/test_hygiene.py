"""Token and secret hygiene: secrets folders 0700, production names its own address, the
WSDL never names the caller's Host, media cannot be sniffed into a page."""

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from hub.kit.keyfiles import load_or_create_secret, write_private_key
from hub.kit.media_response import image_response, proven_type
from hub.settings import SettingsError, load_settings

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
PNG_THEN_HTML = b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script></html>"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_secrets_folder_is_made_and_kept_0700(tmp_path: Path) -> None:
    # Before: `.hub/keys` was 0755 (created with the umask's default).
    old = os.umask(0o022)
    try:
        load_or_create_secret(tmp_path / "hub" / "keys" / "identity.key")
        exposed = tmp_path / "exposed"
        exposed.mkdir(mode=0o755)
        load_or_create_secret(exposed / "identity.key")
    finally:
        os.umask(old)
    assert mode(tmp_path / "hub") == 0o700
    assert mode(tmp_path / "hub" / "keys") == 0o700
    assert mode(tmp_path / "hub" / "keys" / "identity.key") == 0o600
    assert mode(exposed) == 0o700  # an existing secrets folder loses group/other access


def test_a_private_key_gets_a_private_new_folder_but_leaves_an_existing_one(
    tmp_path: Path,
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    before = mode(tmp_path)
    old = os.umask(0o022)
    try:
        write_private_key(tmp_path / "new" / "node.pem", Ed25519PrivateKey.generate())
        write_private_key(tmp_path / "node.pem", Ed25519PrivateKey.generate())
    finally:
        os.umask(old)
    assert mode(tmp_path / "new") == 0o700
    assert mode(tmp_path / "new" / "node.pem") == 0o600
    assert mode(tmp_path) == before  # the user's own folder is not ours to change


def test_xml_signing_identities_do_not_open_the_secrets_folder(tmp_path: Path) -> None:
    # Before: `hub agencies add --kind xml` made `.hub/keys` (and `xml/`) 0755 as parents.
    from adapters.xml.keys import generate_signing_identity

    old = os.umask(0o022)
    try:
        key, _ = generate_signing_identity(tmp_path / "keys" / "xml" / "city", "hub to city")
    finally:
        os.umask(old)
    assert [mode(tmp_path / "keys"), mode(tmp_path / "keys" / "xml")] == [0o700, 0o700]
    assert mode(key) == 0o600


def test_production_requires_an_https_public_base_url() -> None:
    # Before: production started with HUB_PUBLIC_BASE_URL empty (addresses from Host).
    with pytest.raises(SettingsError, match="HUB_PUBLIC_BASE_URL"):
        load_settings({"HUB_ENVIRONMENT": "production"})
    with pytest.raises(SettingsError, match="HUB_PUBLIC_BASE_URL"):
        load_settings({"HUB_ENVIRONMENT": "production", "HUB_PUBLIC_BASE_URL": "http://x"})
    ok = load_settings(
        {"HUB_ENVIRONMENT": "production", "HUB_PUBLIC_BASE_URL": "https://hub.example"}
    )
    assert ok.public_base_url == "https://hub.example"
    assert load_settings({"HUB_ENVIRONMENT": "development"}).public_base_url == ""


@pytest.mark.db
@pytest.mark.redis
async def test_the_wsdl_address_ignores_the_host_header(client: AsyncTestClient[Any]) -> None:
    # Before: `Host: evil.example` came back as the service's soap:address.
    answer = await client.get("/soap/feed", params={"wsdl": ""}, headers={"Host": "evil.example"})
    assert answer.status_code == 200
    assert "evil.example" not in answer.text
    assert 'location="http://testserver.local:80/soap/feed"' in answer.text


def test_media_goes_out_only_as_the_type_its_bytes_prove() -> None:
    # Before: the stored content type was echoed without nosniff.
    assert proven_type(PNG, "image/png") == "image/png"
    assert proven_type(PNG, "image/jpeg") is None
    assert proven_type(b"<html>", "image/png") is None
    image = image_response(PNG_THEN_HTML, "image/png", headers={"X-Decision-Id": "d"})
    assert image.media_type == "image/png"
    assert image.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in image.headers["Content-Security-Policy"]
    assert image.headers["X-Decision-Id"] == "d"
    opaque = image_response(b"<html></html>", "text/html", headers={})
    assert opaque.media_type == "application/octet-stream"
    assert opaque.headers["Content-Disposition"].startswith("attachment")
    assert opaque.headers["X-Content-Type-Options"] == "nosniff"
