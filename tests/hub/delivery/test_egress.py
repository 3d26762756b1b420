"""Agency endpoints and `agencies test` under the egress policy: internal addresses refused
at registration with a stable code, one answer for every kind of failure (no port scanner),
and every test audited."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import msgspec
import pytest

from hub.delivery.agencies import TEST_FAILED, add_agency, get_agency, send_test
from hub.delivery.schemas import AgencyCreate
from hub.kit.errors import ValidationError
from hub.runtime import Services
from hub.settings import Settings
from tests.hub.delivery.harness import Receivers, register
from tests.support import free_port

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.commits]


def rest_agency(receivers: Receivers, url: str) -> AgencyCreate:
    config = receivers.config("rest") | {"url": url}
    return AgencyCreate(name="police-north", kind="rest", config=config)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8101/hook",
        "http://0.0.0.0:8101/hook",
        "http://10.0.0.7/hook",
        "http://127.0.0.2:8101/hook",  # loopback, but outside the tests' allow-list
    ],
)
async def test_registration_refuses_endpoints_outside_public_and_allowed_networks(
    services: Services, receivers: Receivers, url: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        await add_agency(
            services.db, services.delivery.adapters, rest_agency(receivers, url), actor="test"
        )
    assert caught.value.code == "agency_endpoint_refused"


async def test_soap_credentials_in_the_wsdl_url_are_refused_at_registration(
    services: Services, receivers: Receivers
) -> None:
    config = receivers.config("soap")
    config["wsdl_url"] = config["wsdl_url"].replace("http://", "http://hub:s3cret@")
    create = AgencyCreate(name="transit-authority", kind="soap", config=config)

    with pytest.raises(ValidationError) as caught:
        await add_agency(services.db, services.delivery.adapters, create, actor="test")
    assert caught.value.code == "adapter_config"
    assert "s3cret" not in str(caught.value)


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A loopback port that accepts connections and closes them without a word."""

    async def hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    server.close()
    await server.wait_closed()


async def test_agencies_test_says_the_same_for_every_failure_and_is_audited(
    settings: Settings, services: Services, receivers: Receivers, silent_port: int
) -> None:
    await register(services, receivers, ("police-north",))
    _, agency = await get_agency(services.db, "police-north")
    closed = f"http://127.0.0.1:{free_port()}/rest/events"
    silent = f"http://127.0.0.1:{silent_port}/rest/events"
    not_found = f"{receivers.url}/nowhere"
    results = []
    for url in (closed, silent, not_found):
        moved = msgspec.structs.replace(agency, config=agency.config | {"url": url})
        results.append(
            await send_test(services.audit, services.delivery.adapters, moved, actor="admin:ada")
        )

    assert [r.delivered for r in results] == [False, False, False]
    assert {r.error for r in results} == {TEST_FAILED}
    assert results[2].status_code == 404  # the agency's own answer, when it gave one
    audited = await audit_rows(settings, "agency.test")
    assert [(r["actor"], r["target"]) for r in audited] == [
        ("admin:ada", "agency:police-north")
    ] * 3
    assert [r["detail"]["delivery_id"] for r in audited] == [str(r.delivery_id) for r in results]


async def audit_rows(settings: Settings, action: str) -> list[dict[str, Any]]:
    """Audit entries of one action, with their detail decoded."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch(
            "SELECT actor, target, detail::text AS detail FROM audit_log WHERE action = $1",
            action,
        )
    finally:
        await conn.close()
    return [dict(r) | {"detail": msgspec.json.decode(r["detail"])} for r in rows]
