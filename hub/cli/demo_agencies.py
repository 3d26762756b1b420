"""The demo agency of `hub up`: one `hub demo-agency` receiver (REST, SOAP and XML) and the
three recipients of the default policy bundle registered against it.

Its trust material lives in `.hub/demo-agency/` (the webhook secret and the XML signing
identity, private parts 0600), so a restart reuses it. Agencies that already exist are kept
as they are, and the receiver is told to trust what they were registered with.
"""

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import msgspec

from adapters.base import Adapter
from adapters.xml import generate_signing_identity
from hub.cli.agencies import new_webhook_secret
from hub.delivery.agencies import add_agency, get_agency, opened_config
from hub.delivery.schemas import Agency, AgencyCreate, Subscription
from hub.kit.db import Database
from hub.kit.errors import NotFoundError

ACTOR = "cli:hub-up"
DEFAULT_PORT = 8101
IDENTITY = "hub-demo-agency"  # common name and file stem of the XML signing identity
TIMEOUT_SECONDS = 5


class DemoAgencySpec(msgspec.Struct, frozen=True, kw_only=True):
    """One recipient of the default bundle (`policies/data.json`) and how it is reached."""

    name: str
    kind: str
    purpose: str
    jurisdictions: tuple[str, ...]
    clearance: int


DEMO_AGENCIES = (
    DemoAgencySpec(
        name="police-north",
        kind="rest",
        purpose="investigation",
        jurisdictions=("north",),
        clearance=3,
    ),
    DemoAgencySpec(
        name="transit-authority",
        kind="soap",
        purpose="traffic",
        jurisdictions=("central",),
        clearance=2,
    ),
    DemoAgencySpec(
        name="city-analytics",
        kind="xml",
        purpose="statistics",
        jurisdictions=("central",),
        clearance=1,
    ),
)


class AgencyTrust(msgspec.Struct, frozen=True, kw_only=True):
    """The hub's side of the demo agency's trust: webhook secret and XML signing identity."""

    secret: str
    key_file: str
    cert_file: str


class DemoAgency(msgspec.Struct, frozen=True, kw_only=True):
    """The receiver to start: where it listens and what it must trust."""

    url: str
    port: int
    secrets: list[str]
    secrets_file: str  # the same secrets, one a line (0600): the receiver reads them there
    xml_cert: str | None


def agency_url(port: int) -> str:
    """The demo agency's base URL (it always listens on loopback)."""
    return f"http://127.0.0.1:{port}"


def load_trust(state_dir: Path) -> AgencyTrust:
    """The webhook secret and XML identity under `state_dir/demo-agency`, made on first use."""
    folder = state_dir / "demo-agency"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret_path = folder / "webhook-secret"
    if not secret_path.exists():
        _write_private(secret_path, new_webhook_secret() + "\n")
    key, cert = folder / f"{IDENTITY}.key.pem", folder / f"{IDENTITY}.cert.pem"
    if not key.exists() and not cert.exists():
        key, cert = generate_signing_identity(folder, IDENTITY)
    elif not (key.exists() and cert.exists()):
        raise ValueError(
            f"{folder} holds half an XML signing identity; remove {key.name} and {cert.name} "
            "to make a new one"
        )
    return AgencyTrust(
        secret=secret_path.read_text(encoding="utf-8").strip(),
        key_file=str(key.resolve()),
        cert_file=str(cert.resolve()),
    )


def adapter_config(kind: str, *, url: str, trust: AgencyTrust) -> dict[str, object]:
    """The adapter configuration that reaches the demo agency at `url` as `kind`."""
    if kind == "rest":
        return {
            "url": f"{url}/rest/events",
            "secrets": [trust.secret],
            "timeout_seconds": TIMEOUT_SECONDS,
        }
    if kind == "soap":
        return {
            "wsdl_url": f"{url}/soap/agency?wsdl",
            "operation": "SubmitDetection",
            "timeout_seconds": TIMEOUT_SECONDS,
        }
    return {
        "url": f"{url}/xml/alerts",
        "signing_key_file": trust.key_file,
        "signing_cert_file": trust.cert_file,
        "timeout_seconds": TIMEOUT_SECONDS,
    }


async def ensure_demo_agencies(
    db: Database,
    adapters: Mapping[str, Adapter],
    *,
    port: int,
    trust: AgencyTrust,
    say: Callable[[str], None],
) -> DemoAgency:
    """Register the demo agencies that are missing; the receiver that serves all three.

    An agency that exists is left alone (it may have been changed on purpose); its webhook
    secrets and signing certificate are added to what the receiver trusts.
    """
    url = agency_url(port)
    secrets, cert = [trust.secret], trust.cert_file
    for spec in DEMO_AGENCIES:
        existing = await _find(db, spec.name)
        if existing is None:
            await _register(db, adapters, spec, url=url, trust=trust, say=say)
            continue
        secrets += [s for s in _strings(existing.config.get("secrets")) if s not in secrets]
        if existing.kind == "xml":
            cert = _registered_cert(existing, fallback=cert, say=say)
        target = existing.config.get("url") or existing.config.get("wsdl_url") or ""
        if not str(target).startswith(url + "/"):
            say(
                f"demo agency {spec.name} is registered for {target or 'another endpoint'}, "
                f"not the demo agency at {url}; its deliveries will not show in {url}/_inbox/"
            )
    secrets_file = Path(trust.key_file).parent / "trusted-secrets"
    secrets_file.unlink(missing_ok=True)
    _write_private(secrets_file, "".join(f"{s}\n" for s in secrets))
    return DemoAgency(
        url=url, port=port, secrets=secrets, secrets_file=str(secrets_file), xml_cert=cert
    )


def agency_command(agency: DemoAgency) -> list[str]:
    """`hub demo-agency` serving REST, SOAP and XML with the secrets and certificate given.

    The secrets are passed by file, never on the command line (which `ps` shows to anyone).
    """
    argv = [sys.executable, "-u", "-m", "hub.cli.main", "demo-agency"]
    argv += ["--host", "127.0.0.1", "--port", str(agency.port)]
    argv += ["--secret-file", agency.secrets_file]
    if agency.xml_cert is not None:
        argv += ["--xml-cert", agency.xml_cert]
    return argv


async def _find(db: Database, name: str) -> Agency | None:
    try:
        _, agency = await get_agency(db, name)
    except NotFoundError:
        return None
    # Its secrets are stored sealed; the receiver must trust them in clear.
    return msgspec.structs.replace(agency, config=opened_config(agency))


async def _register(
    db: Database,
    adapters: Mapping[str, Adapter],
    spec: DemoAgencySpec,
    *,
    url: str,
    trust: AgencyTrust,
    say: Callable[[str], None],
) -> None:
    create = AgencyCreate(
        name=spec.name,
        kind=spec.kind,
        config=adapter_config(spec.kind, url=url, trust=trust),
        subscription=Subscription(purpose=spec.purpose),
        jurisdictions=list(spec.jurisdictions),
        clearance=spec.clearance,
    )
    agency = await add_agency(db, adapters, create, actor=ACTOR)
    say(f"registered demo agency {agency.name} ({agency.kind}) -> {agency.endpoint}")


def _registered_cert(agency: Agency, *, fallback: str, say: Callable[[str], None]) -> str:
    """The certificate an existing XML agency signs with, if its file is still there."""
    cert = agency.config.get("signing_cert_file")
    if isinstance(cert, str) and Path(cert).is_file():
        return cert
    say(
        f"demo agency {agency.name} signs with a certificate that is gone ({cert}); "
        "the demo agency will refuse its alerts"
    )
    return fallback


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _write_private(path: Path, text: str) -> None:
    """Write a new file readable by its owner only (0600 from the first byte)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
