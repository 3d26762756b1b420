"""The REST adapter over TLS: a private CA, a server certificate and mutual TLS on loopback."""

import datetime as dt
import ipaddress
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from adapters.base import PermanentError, RetryableError
from adapters.egress import EgressGuard
from adapters.rest import RestAdapter
from hub.demo_agency.app import PATHS, create_receiver_app
from hub.demo_agency.inbox import Inbox
from hub.demo_agency.options import ReceiverOptions
from tests.adapters.test_rest import RECORD, make_message, new_secret, rest_config
from tests.support import free_port

LOOPBACK = EgressGuard(allowed_networks=["127.0.0.1/32"])  # receivers listen here

# See tests/adapters/test_rest.py: a deprecation in hub/demo_agency/app.py, not ours.


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _issue(
    subject: str,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    *,
    usage: x509.ObjectIdentifier,
    server: bool,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if server:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def make_pki(folder: Path) -> dict[str, str]:
    """Write ca.pem, server.pem/server.key and client.pem/client.key; returns their paths."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("hub test CA")
    now = dt.datetime.now(dt.UTC)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {name: str(folder / name) for name in ("ca.pem", "server.pem", "server.key")}
    paths |= {name: str(folder / name) for name in ("client.pem", "client.key")}
    Path(paths["ca.pem"]).write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    for role, usage in (
        ("server", ExtendedKeyUsageOID.SERVER_AUTH),
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH),
    ):
        cert, key = _issue(role, ca_key, ca_name, usage=usage, server=role == "server")
        Path(paths[f"{role}.pem"]).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, Path(paths[f"{role}.key"]))
    return paths


class TlsServer:
    """Uvicorn over TLS on a free loopback port in a thread; optionally requires client certs."""

    def __init__(self, app: object, *, cert: str, key: str, client_ca: str | None) -> None:
        self.app = app
        self.port = free_port()
        self.files = (cert, key, client_ca)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def __enter__(self) -> "TlsServer":
        import uvicorn

        cert, key, client_ca = self.files
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            ssl_certfile=cert,
            ssl_keyfile=key,
            ssl_ca_certs=client_ca,
            ssl_cert_reqs=ssl.CERT_REQUIRED if client_ca else ssl.CERT_NONE,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("TLS server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        assert self._thread is not None
        self._thread.join(timeout=10)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def secret() -> str:
    return new_secret()


@pytest.fixture(scope="module")
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture(scope="module")
def mtls_server(pki: dict[str, str], secret: str, inbox: Inbox) -> Iterator[TlsServer]:
    app = create_receiver_app(["rest"], ReceiverOptions(webhook_secrets=[secret]), inbox=inbox)
    with TlsServer(
        app, cert=pki["server.pem"], key=pki["server.key"], client_ca=pki["ca.pem"]
    ) as server:
        yield server


@pytest.fixture
async def adapter() -> AsyncIterator[RestAdapter]:
    rest = RestAdapter(egress=LOOPBACK)
    yield rest
    await rest.aclose()


async def test_mutual_tls_delivery_is_accepted(
    adapter: RestAdapter, mtls_server: TlsServer, pki: dict[str, str], secret: str, inbox: Inbox
) -> None:
    config = adapter.parse_config(
        rest_config(
            mtls_server.url + PATHS["rest"],
            [secret],
            ca_file=pki["ca.pem"],
            client_cert_file=pki["client.pem"],
            client_key_file=pki["client.key"],
        )
    )
    message = make_message()

    receipt = await adapter.deliver(message, config)

    assert receipt.status_code == 200
    assert inbox.count_of(str(message.delivery_id)) == 1
    assert inbox.items()[-1].record == RECORD


async def test_missing_client_certificate_is_retryable(
    adapter: RestAdapter, mtls_server: TlsServer, pki: dict[str, str], secret: str
) -> None:
    config = adapter.parse_config(
        rest_config(mtls_server.url + PATHS["rest"], [secret], ca_file=pki["ca.pem"])
    )

    with pytest.raises(RetryableError):
        await adapter.deliver(make_message(), config)


async def test_unknown_server_ca_is_retryable(
    adapter: RestAdapter, mtls_server: TlsServer, pki: dict[str, str], secret: str
) -> None:
    # Without `ca_file` the system trust store does not know our private CA.
    config = adapter.parse_config(
        rest_config(
            mtls_server.url + PATHS["rest"],
            [secret],
            client_cert_file=pki["client.pem"],
            client_key_file=pki["client.key"],
        )
    )

    with pytest.raises(RetryableError) as caught:
        await adapter.deliver(make_message(), config)

    assert "ConnectError" in str(caught.value)


async def test_unreadable_tls_files_are_permanent_and_name_the_field(
    adapter: RestAdapter, tmp_path: Path, secret: str
) -> None:
    config = adapter.parse_config(
        rest_config("https://127.0.0.1:9/x", [secret], ca_file=str(tmp_path / "missing.pem"))
    )

    with pytest.raises(PermanentError) as caught:
        await adapter.deliver(make_message(), config)

    assert "`ca_file`" in str(caught.value)
