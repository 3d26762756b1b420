"""Values PostgreSQL cannot take are refused at the boundary (4xx), never a 500.

Each case below answered 500 before: a NUL in text, an integer past int64, a uuid written as
36 hex digits without hyphens. The last test shows the net behind the boundaries: a value the
database itself refuses is the request's fault (422), not the hub's.
"""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar import Litestar, get
from litestar.params import FromQuery
from litestar.testing import AsyncTestClient

from hub.app import create_app
from hub.kit.problems import EXCEPTION_HANDLERS
from hub.settings import Settings
from tests.hub.feeds.builders import agency_token, bearer, issue, register_agencies
from tests.hub.identity.builders import admin_token_fields
from tests.support import BASE_URL

pytestmark = [pytest.mark.db, pytest.mark.redis]

CASES: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("officer", "GET", "/v1/audit/entries/9223372036854775808", None),
    ("officer", "GET", "/v1/audit/entries?action=a%00b", None),
    ("officer", "GET", "/v1/audit/proofs/inclusion/9223372036854775808", None),
    ("officer", "GET", "/v1/audit/proofs/consistency?first=1&second=9223372036854775808", None),
    ("officer", "GET", "/v1/decisions?event_id=000000000000000000000000000000000000", None),
    ("officer", "GET", "/v1/decisions/z%00x", None),
    ("officer", "POST", "/v1/incidents", {"title": "a\x00b"}),
    ("agency", "GET", "/v1/feeds/events?camera=a%00b", None),
    ("admin", "GET", "/v1/admin/deliveries?agency=a%00b", None),
    ("admin", "POST", "/v1/admin/agencies/z%00x/resume", None),
    ("admin", "GET", "/v1/admin/nodes/z%00x/cameras", None),
    ("admin", "POST", "/v1/admin/agencies/police-north/pause", {"reason": "a\x00b"}),
]


@pytest.fixture
async def http(settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[AsyncTestClient, dict]]:
    """A real app, the demo agencies and an officer's and an admin's token."""
    await register_agencies(settings.database_url)
    path = tmp_path / "tokens.toml"
    tokens = {
        "officer": issue(path, "olga", roles=["compliance_officer"]),
        "agency": agency_token(path, "police-north"),
        "admin": issue(path, "ada", roles=["admin"], **admin_token_fields()),
    }
    app = create_app(msgspec.structs.replace(settings, api_tokens_file=str(path)))
    async with AsyncTestClient(app=app, base_url=BASE_URL) as client:
        yield client, tokens


@pytest.mark.parametrize(("role", "method", "url", "body"), CASES)
async def test_unstorable_values_are_refused_at_the_boundary(
    http: tuple[AsyncTestClient, dict],
    role: str,
    method: str,
    url: str,
    body: dict[str, Any] | None,
) -> None:
    client, tokens = http
    response = await client.request(method, url, json=body, headers=bearer(tokens[role]))
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "validation_failed"


async def test_a_value_the_database_refuses_is_422_not_500(settings: Settings) -> None:
    @get("/echo")
    async def echo(text: FromQuery[str]) -> str:
        conn = await asyncpg.connect(settings.database_url)
        try:
            return str(await conn.fetchval("SELECT $1::text", text))
        finally:
            await conn.close()

    app = Litestar([echo], exception_handlers=EXCEPTION_HANDLERS)
    async with AsyncTestClient(app=app) as client:
        fine = await client.get("/echo", params={"text": "ab"})
        refused = await client.get("/echo", params={"text": "a\x00b"})
    assert (fine.status_code, fine.text) == (200, "ab")
    assert refused.status_code == 422
    assert refused.json()["type"] == "/problems/unstorable_value"
