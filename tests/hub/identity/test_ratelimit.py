"""Rate limits on the real app with real Redis: GCRA budget, 429 problem and headers."""

from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from hub.app import create_app
from hub.identity.ratelimit import Limit, LimitTable, choose_limit
from hub.identity.tokens import TokenEntry, append_token, new_token, token_hash
from hub.settings import Settings
from tests.hub.identity.builders import admin_token_fields
from tests.support import BASE_URL

STATUS = "/v1/admin/policy/status"


def test_a_client_entry_beats_a_route_entry_beats_the_default() -> None:
    table = LimitTable(
        routes={"/oauth/token": Limit(requests=5)}, clients={"client:bot": Limit(requests=9)}
    )
    fallback = Limit(requests=600)
    assert choose_limit(table, fallback, route="/oauth/token", client="client:bot").requests == 9
    assert choose_limit(table, fallback, route="/oauth/token", client="ip:1.2.3.4").requests == 5
    assert choose_limit(table, fallback, route="/v1/x", client="ip:1.2.3.4").requests == 600


@pytest.mark.db
@pytest.mark.redis
async def test_the_budget_is_per_client_and_route_then_429_with_headers(
    settings: Settings, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens.toml"
    ada, bob = new_token(), new_token()
    for token, name in ((ada, "ada"), (bob, "bob")):
        append_token(
            tokens,
            msgspec.convert(
                {
                    "sha256": token_hash(token),
                    "subject": name,
                    "roles": ["admin"],
                    **admin_token_fields(),
                },
                TokenEntry,
            ),
        )
    limited = msgspec.structs.replace(
        settings, api_tokens_file=str(tokens), ratelimit_requests=3, ratelimit_period_seconds=60
    )
    async with AsyncTestClient(app=create_app(limited), base_url=BASE_URL) as client:
        answers = [
            await client.get(STATUS, headers={"Authorization": f"Bearer {ada}"}) for _ in range(4)
        ]
        other: Any = await client.get(STATUS, headers={"Authorization": f"Bearer {bob}"})
        probes = [await client.get("/healthz") for _ in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["ratelimit-remaining"] for a in answers[:3]] == ["2", "1", "0"]
    refused = answers[3]
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "rate_limited"
    assert refused.json()["type"] == "/problems/rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 20
    assert refused.headers["ratelimit-limit"] == "3"
    assert refused.headers["ratelimit-remaining"] == "0"
    assert int(refused.headers["ratelimit-reset"]) > 0
    assert other.status_code == 200  # another client has its own budget
    assert all(p.status_code == 200 for p in probes)  # probes are never limited
