"""mTLS on a real uvicorn TLS server on loopback with a throw-away CA, and the proxy header
trusted only from configured proxy addresses."""

import ssl
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import msgspec
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hub.app import create_app
from hub.identity.mtls import uvicorn_tls_options
from hub.identity.tokens import TokenEntry, append_token, new_token, token_hash
from hub.settings import Settings
from tests.hub.identity.builders import admin_token_fields
from tests.support import free_port

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.slow]

STATUS = "/v1/admin/policy/status"


class Authority:
    """A throw-away CA that issues server and client certificates."""

    def __init__(self, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            self._builder(subject, self.key.public_key(), subject)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def _builder(
        self, subject: x509.Name, public: Any, issuer: x509.Name
    ) -> x509.CertificateBuilder:
        now = datetime.now(UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(hours=1))
        )

    def issue(self, folder: Path, name: str, *, server: bool = False) -> tuple[Path, Path]:
        """Write a certificate and key for `name`; returns their paths."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = self._builder(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]),
            key.public_key(),
            self.cert.subject,
        )
        if server:
            import ipaddress

            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        else:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False
            )
        cert = builder.sign(self.key, hashes.SHA256())
        cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert_path, key_path

    def write(self, path: Path) -> Path:
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path


class Server:
    """The real hub app on uvicorn in a thread (TLS when the settings say so)."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            **uvicorn_tls_options(settings),
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "Server":
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            assert self.thread.is_alive(), "server thread died"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Any]:
    ca, rogue = Authority("hub test CA"), Authority("rogue CA")
    return {
        "ca": ca.write(tmp_path / "ca.crt"),
        "server": ca.issue(tmp_path, "server", server=True),
        "ada": ca.issue(tmp_path, "ada"),
        "mallory": ca.issue(tmp_path, "mallory"),
        "rogue": rogue.issue(tmp_path, "rogue-ada"),
        "ca_obj": ca,
        "folder": tmp_path,
    }


@pytest.fixture
def admin_token(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "tokens.toml"
    token = new_token()
    append_token(
        path,
        msgspec.convert(
            {
                "sha256": token_hash(token),
                "subject": "ada",
                "roles": ["admin"],
                **admin_token_fields(),
            },
            TokenEntry,
        ),
    )
    return path, token


def _get(url: str, *, token: str, cert: tuple[Path, Path] | None, ca: Path) -> httpx.Response:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    with httpx.Client(verify=context, timeout=10) as http:
        return http.get(url, headers={"Authorization": f"Bearer {token}"})


async def test_client_certificates_over_real_tls(
    settings: Settings, pki: dict[str, Any], admin_token: tuple[Path, str]
) -> None:
    import asyncio

    tokens, token = admin_token
    tls = msgspec.structs.replace(
        settings,
        api_tokens_file=str(tokens),
        tls_cert_file=str(pki["server"][0]),
        tls_key_file=str(pki["server"][1]),
        mtls_ca_file=str(pki["ca"]),
        mtls_required_prefixes="/v1/admin",
    )
    with Server(tls) as server:
        url = f"https://127.0.0.1:{server.port}{STATUS}"

        def call(cert: tuple[Path, Path] | None) -> httpx.Response:
            return _get(url, token=token, cert=cert, ca=pki["ca"])

        accepted = await asyncio.to_thread(call, pki["ada"])
        missing = await asyncio.to_thread(call, None)
        mismatch = await asyncio.to_thread(call, pki["mallory"])
        health = await asyncio.to_thread(
            lambda: httpx.get(
                f"https://127.0.0.1:{server.port}/healthz",
                verify=ssl.create_default_context(cafile=str(pki["ca"])),
            )
        )
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            await asyncio.to_thread(call, pki["rogue"])  # the handshake refuses a foreign CA
    assert accepted.status_code == 200, accepted.text
    assert (missing.status_code, missing.json()["code"]) == (401, "client_cert_required")
    assert (mismatch.status_code, mismatch.json()["code"]) == (401, "client_cert_mismatch")
    assert health.status_code == 200  # routes outside the mTLS prefixes need no certificate


async def test_proxy_header_is_trusted_only_from_configured_proxies(
    settings: Settings, pki: dict[str, Any], admin_token: tuple[Path, str]
) -> None:
    import asyncio

    tokens, token = admin_token
    header = quote(Path(pki["ada"][0]).read_text())
    rogue_header = quote(Path(pki["rogue"][0]).read_text())
    base = msgspec.structs.replace(
        settings,
        api_tokens_file=str(tokens),
        mtls_ca_file=str(pki["ca"]),
        mtls_required_prefixes="/v1/admin",
    )

    def call(port: int, value: str) -> httpx.Response:
        return httpx.get(
            f"http://127.0.0.1:{port}{STATUS}",
            headers={"Authorization": f"Bearer {token}", "X-Client-Cert": value},
            timeout=10,
        )

    untrusted = msgspec.structs.replace(base, trusted_proxies="10.0.0.0/8")
    with Server(untrusted) as server:
        ignored = await asyncio.to_thread(call, server.port, header)
    trusted = msgspec.structs.replace(base, trusted_proxies="127.0.0.1/32")
    with Server(trusted) as server:
        believed = await asyncio.to_thread(call, server.port, header)
        forged = await asyncio.to_thread(call, server.port, rogue_header)
    assert (ignored.status_code, ignored.json()["code"]) == (401, "client_cert_required")
    assert believed.status_code == 200, believed.text
    assert (forged.status_code, forged.json()["code"]) == (401, "client_cert_required")
