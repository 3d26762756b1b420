"""WS /v1/feeds/live follows its token, its agency and the active policy after it opened,
caps the sockets of one subject and counts open sockets in /metrics. Real sockets: the app
on uvicorn on loopback, a websockets client, real PostgreSQL and Redis."""

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from hub.app import create_app
from hub.delivery.agencies import pause_agency
from hub.feeds.live_access import token_deadline
from hub.identity.oauth import ClientCreate, add_client, revoke_client
from hub.identity.oauth.schemas import Grantee
from hub.identity.oauth.service import ensure_signing_key
from hub.kit.clock import utcnow
from hub.policy.bundles import Actor, UploadRules, activate_bundle, upload_bundle
from hub.policy.bundles.schemas import RegoTestSummary
from hub.runtime import Services
from hub.settings import Settings
from tests.hub.feeds.builders import agency_token, bearer
from tests.hub.policy.bundles.builders import make_key, signed_archive
from tests.support import ThreadedServer, repo_root

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.commits, pytest.mark.slow]

RECHECK = 0.3
KEY = make_key("live-admin")


@pytest.fixture
def live_settings(feed_settings: Settings) -> Settings:
    """Quick re-checks and a cap of two sockets per subject."""
    return msgspec.structs.replace(
        feed_settings, feeds_live_recheck_seconds=RECHECK, feeds_live_max_sockets_per_subject=2
    )


@pytest.fixture
def server(live_settings: Settings, agencies: None) -> Iterator[ThreadedServer]:
    """The hub on a loopback port."""
    with ThreadedServer(create_app(live_settings)) as running:
        yield running


def ws_url(server: ThreadedServer) -> str:
    return server.url.replace("http://", "ws://") + "/v1/feeds/live"


async def read_for(ws: ClientConnection, seconds: float) -> None:
    """Read whatever comes for `seconds` (TimeoutError then) or until the socket closes."""
    async with asyncio.timeout(seconds):
        while True:
            await ws.recv()


async def closed_within(ws: ClientConnection, seconds: float) -> tuple[int, str, float]:
    """How the hub closed the socket and after how many seconds (fails if it did not)."""
    started = time.monotonic()
    with pytest.raises(ConnectionClosed) as closed:
        await read_for(ws, seconds)
    frame = closed.value.rcvd
    assert frame is not None, "the hub must send a close frame"
    return frame.code, frame.reason, time.monotonic() - started


async def stays_open(ws: ClientConnection, seconds: float) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ws.recv(), seconds)


async def test_a_socket_closes_when_its_token_expires(
    server: ThreadedServer, tokens_file: Path, tokens: dict[str, str]
) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=2)
    token = agency_token(tokens_file, "police-north", expires_at=expires)
    await asyncio.sleep(1.1)  # the tokens file is re-read at most once a second

    async with connect(ws_url(server), additional_headers=bearer(token)) as ws:
        code, reason, _ = await closed_within(ws, 6)
    late = (datetime.now(UTC) - expires).total_seconds()

    assert code == 4401
    assert reason.startswith("token_expired")
    assert late < 1.5 + RECHECK


async def test_a_socket_closes_when_its_access_token_is_revoked(
    server: ThreadedServer, services: Services
) -> None:
    made = await add_client(
        services.identity,
        ClientCreate(
            client_id="transit-live",
            roles=["agency"],
            agency="transit-authority",
            jurisdictions=["central"],
            clearance=2,
            purpose="traffic",
        ),
        actor="test",
    )
    async with httpx.AsyncClient(base_url=server.url) as http:
        answer = await http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("transit-live", made.client_secret),
        )
    assert answer.status_code == 200, answer.text
    headers = bearer(answer.json()["access_token"])

    async with connect(ws_url(server), additional_headers=headers) as ws:
        await stays_open(ws, 2 * RECHECK)
        await revoke_client(services.identity, "transit-live", actor="test")
        code, reason, after = await closed_within(ws, 5)

    assert code == 4401
    assert reason.startswith("token_revoked")
    assert after < 1.0 + 2 * RECHECK  # revocations are cached for up to a second


async def test_a_socket_closes_when_its_agency_is_paused_and_no_new_one_opens(
    server: ThreadedServer, services: Services, tokens: dict[str, str]
) -> None:
    async with connect(ws_url(server), additional_headers=bearer(tokens["police"])) as ws:
        await stays_open(ws, 2 * RECHECK)
        await pause_agency(services.db, "police-north", reason="maintenance", actor="test")
        code, reason, after = await closed_within(ws, 6)
    with pytest.raises(InvalidStatus) as refused:
        async with connect(ws_url(server), additional_headers=bearer(tokens["police"])):
            pass

    assert (code, reason) == (4403, "agency_paused")
    assert after < 2.0 + 2 * RECHECK  # agencies are cached for two seconds
    assert refused.value.response.status_code == 403


def default_bundle(revision: str, *, feed_purposes: list[str]) -> dict[str, bytes]:
    """The shipped bundle with another revision and the feeds' allowed purposes changed."""
    root = repo_root() / "policies"
    files = {
        str(path.relative_to(root)): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file() and path.suffix in {".rego", ".json", ""}
    }
    files[".manifest"] = msgspec.json.encode({"revision": revision, "roots": ["hub", "system"]})
    data: dict[str, Any] = msgspec.json.decode(files["data.json"])
    data["hub"]["config"]["authz"]["routes"]["/v1/feeds/**"]["abac"]["purposes"] = feed_purposes
    files["data.json"] = msgspec.json.encode(data)
    return files


async def no_tests(_: object) -> RegoTestSummary:
    """The shipped tests would fail on the changed data; this test is about activation."""
    return RegoTestSummary(passed=0, failed=0)


async def test_a_bundle_that_takes_the_route_away_closes_only_the_sockets_it_concerns(
    server: ThreadedServer, services: Services, tokens: dict[str, str]
) -> None:
    files = default_bundle("live-r2", feed_purposes=["traffic", "statistics"])
    rules = UploadRules(keys=KEY.trusted, signing_required=True, check=no_tests)
    await upload_bundle(services.db, signed_archive(files, KEY), actor=Actor(name="t"), rules=rules)
    police_headers = bearer(tokens["police"])
    async with (
        connect(ws_url(server), additional_headers=police_headers) as police,
        connect(ws_url(server), additional_headers=bearer(tokens["transit"])) as transit,
    ):
        await stays_open(police, 0.2)
        started = time.monotonic()
        await activate_bundle(services.db, services.redis, "live-r2", actor=Actor(name="t"))
        code, reason, _ = await closed_within(police, 10)
        elapsed = time.monotonic() - started
        await stays_open(transit, 3 * RECHECK)

    assert code == 4403
    assert reason.startswith("policy_denied")
    assert elapsed < 3.0


async def live_sockets(server: ThreadedServer, token: str) -> float:
    """hub_feeds_live_sockets{agency="police-north"} as /metrics shows it."""
    async with httpx.AsyncClient(base_url=server.url) as http:
        scrape = await http.get("/metrics", headers=bearer(token))
    assert scrape.status_code == 200, scrape.text
    for line in scrape.text.splitlines():
        if line.startswith('hub_feeds_live_sockets{agency="police-north"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_one_subject_holds_at_most_the_cap_and_open_sockets_are_counted(
    server: ThreadedServer, tokens: dict[str, str]
) -> None:
    headers, admin = bearer(tokens["police"]), tokens["admin"]
    before = await live_sockets(server, admin)
    async with (
        connect(ws_url(server), additional_headers=headers) as first,
        connect(ws_url(server), additional_headers=headers),
    ):
        await stays_open(first, 0.2)
        counted = await live_sockets(server, admin)
        async with connect(ws_url(server), additional_headers=headers) as third:
            code, reason, _ = await closed_within(third, 5)
        async with connect(ws_url(server), additional_headers=bearer(tokens["transit"])) as other:
            await stays_open(other, 0.2)  # another subject is not counted against this one
        await first.close()
        await asyncio.sleep(0.3)
        async with connect(ws_url(server), additional_headers=headers) as again:
            await stays_open(again, 0.2)
    await asyncio.sleep(0.3)
    after = await live_sockets(server, admin)

    assert counted - before == 2
    assert (code, reason) == (4429, "too many live sockets for this subject (at most 2)")
    assert after == before


@pytest.mark.parametrize(
    "change",
    [
        "clearance = 2",  # the recipient
        "sub_min_confidence = 0.95",  # the subscription: what its audience is offered
    ],
)
async def test_a_socket_closes_when_what_it_may_see_changes(
    server: ThreadedServer, services: Services, tokens: dict[str, str], change: str
) -> None:
    async with connect(ws_url(server), additional_headers=bearer(tokens["police"])) as ws:
        await stays_open(ws, 2 * RECHECK)
        await services.db.pool.execute(
            f"UPDATE agency SET {change} WHERE name = 'police-north'"  # noqa: S608 - fixed values
        )
        code, reason, after = await closed_within(ws, 6)

    assert code == 4409
    assert reason == "what this socket may see changed; reconnect"
    assert after < 2.0 + 2 * RECHECK  # agencies are cached for two seconds


async def test_a_socket_is_rechecked_when_its_access_token_stops_being_accepted(
    services: Services,
) -> None:
    await ensure_signing_key(services.identity)
    grantee = Grantee(sub="transit-live", kind="client", roles=["agency"])
    token, claims = await services.identity.issuer.issue(grantee, now=utcnow())
    leeway = services.settings.jwt_leeway_seconds

    deadline = await token_deadline(services.authn, bearer(token))
    static = await token_deadline(services.authn, bearer("hubt_static-token"))

    assert deadline is not None
    left = deadline - asyncio.get_running_loop().time()
    assert abs(left - (claims.exp + leeway - utcnow().timestamp())) < 0.5
    assert static is None  # static tokens are re-checked on the period


async def test_a_socket_closes_at_its_access_token_expiry_not_at_the_next_period(
    live_settings: Settings, agencies: None, services: Services
) -> None:
    short = msgspec.structs.replace(
        live_settings,
        # Below the settings' floor of 30 s (replace() does not validate): the mechanism is
        # the same at 8 s, and the suite waits 22 s less.
        access_token_ttl_seconds=8,
        jwt_leeway_seconds=0,
        feeds_live_recheck_seconds=120,  # only the token's own deadline can close it in time
    )
    made = await add_client(
        services.identity,
        ClientCreate(
            client_id="police-short",
            roles=["agency"],
            agency="police-north",
            jurisdictions=["north"],
            clearance=3,
            purpose="investigation",
        ),
        actor="test",
    )
    with ThreadedServer(create_app(short)) as running:
        async with httpx.AsyncClient(base_url=running.url) as http:
            answer = await http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=("police-short", made.client_secret),
            )
        assert answer.status_code == 200, answer.text
        expires_in = answer.json()["expires_in"]
        async with connect(
            ws_url(running), additional_headers=bearer(answer.json()["access_token"])
        ) as ws:
            code, reason, after = await closed_within(ws, 20)

    assert (code, reason.split(":")[0]) == (4401, "token_expired")
    assert expires_in - 2 < after < expires_in + 1.5
