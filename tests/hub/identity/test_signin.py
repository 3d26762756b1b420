"""Sign-in under attack: limits keyed on verified identity, per-account backoff and lockout,
one generic error, refresh reuse revoking live access tokens, authenticated revocation."""

import asyncio
import dataclasses
import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode

import asyncpg
import msgspec
import pytest
from litestar.testing import AsyncTestClient
from litestar.types import Scope
from prometheus_client import REGISTRY

from hub.app import create_app
from hub.identity.mtls import MtlsConfig
from hub.identity.oauth import AccessTokenVerifier, UserCreate, add_user
from hub.identity.oauth.lockout import SigninThrottle
from hub.identity.oauth.rules import Throttle
from hub.identity.ratelimit import ClientKeys
from hub.identity.tokens import TokenStore
from hub.kit.errors import UnavailableError
from hub.runtime import Services, build_services
from hub.settings import Settings
from tests.hub.identity.builders import (
    FORM,
    PASSWORD,
    admin_user,
    agency_client,
    basic,
    bearer,
    client_token,
)
from tests.support import BASE_URL

pytestmark = [pytest.mark.db, pytest.mark.redis]

STATUS = "/v1/admin/policy/status"
LOCKOUTS = "/v1/admin/identity/lockouts"
# Short enough for a test: 2 free failures, a 2 s wait after the 3rd, locked at the 4th.
FAST = Throttle(free_attempts=2, base_delay_seconds=2, lock_after=4, lock_seconds=60)


def test_backoff_doubles_then_locks_flat() -> None:
    rules = Throttle()
    waits = [rules.delay_after(n) for n in range(1, 13)]
    assert waits[:4] == [0, 0, 0, 0]
    assert waits[4:9] == [1, 2, 4, 8, 16]
    assert waits[9:] == [900, 900, 900]
    assert [rules.locks(n) for n in (9, 10, 11)] == [False, True, True]


def test_the_peer_is_believed_only_from_a_trusted_proxy(tmp_path: Path) -> None:
    proxies = MtlsConfig.from_settings(Settings(trusted_proxies="10.0.0.0/8"))
    verifier = cast(AccessTokenVerifier, None)  # never asked: no bearer token here
    keys = ClientKeys(verifier, TokenStore(tmp_path / "tokens.toml"), proxies=proxies)
    forwarded = {"x-forwarded-for": "6.6.6.6, 203.0.113.9"}
    via_proxy = cast(Scope, {"client": ("10.1.2.3", 1)})
    direct = cast(Scope, {"client": ("198.51.100.1", 1)})
    assert keys.peer(via_proxy, forwarded) == "203.0.113.9"  # the hop the proxy added
    assert keys.peer(direct, forwarded) == "198.51.100.1"  # anyone else may not claim one


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    """An app whose default limit is 3 requests a minute per client and route."""
    low = msgspec.structs.replace(settings, ratelimit_requests=3, ratelimit_period_seconds=60)
    async with AsyncTestClient(app=create_app(low), base_url=BASE_URL) as client:
        yield client


async def test_a_new_random_bearer_per_request_buys_no_new_budget(
    limited: AsyncTestClient[Any],
) -> None:
    # Before: keyed on the bearer's hash, every invented token had its own budget (0 refusals).
    answers = [
        await limited.get(STATUS, headers=bearer("hubt_" + secrets.token_urlsafe(16)))
        for _ in range(5)
    ]
    assert [a.status_code for a in answers] == [401, 401, 401, 429, 429]
    assert answers[3].json()["code"] == "rate_limited"


async def test_a_new_random_keyid_per_request_buys_no_new_budget(
    limited: AsyncTestClient[Any],
) -> None:
    # Before: keyed on the unverified `keyid` of Signature-Input.
    answers = []
    for _ in range(5):
        keyid = str(uuid.uuid4())
        headers = {
            "Signature-Input": f'sig1=("@method");keyid="{keyid}"',
            "Signature": "sig1=:AA==:",
        }
        answers.append(await limited.post("/v1/edge/events", content=b"{}", headers=headers))
    assert [a.status_code for a in answers][3:] == [429, 429]


async def test_a_verified_token_keeps_its_own_budget(
    limited: AsyncTestClient[Any], services: Services
) -> None:
    secret = await agency_client(services)
    token = await client_token(limited, "transit-bot", secret)
    for _ in range(3):  # an attacker spends the address's budget with junk tokens
        await limited.get(STATUS, headers=bearer("hubt_junk" + secrets.token_urlsafe(8)))
    own = await limited.get(STATUS, headers=bearer(token))
    assert own.status_code == 403  # authenticated, then denied by policy: not 429


@pytest.fixture
async def fast_client(settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    """The real app with a throttle fast enough for a test."""
    built = build_services(settings)
    identity = dataclasses.replace(built.identity, throttle=SigninThrottle(built.redis, rules=FAST))
    fast = dataclasses.replace(built, identity=identity)
    async with AsyncTestClient(app=create_app(settings, services=fast), base_url=BASE_URL) as c:
        yield c


def password_form(username: str, password: str, totp: str | None = None) -> str:
    form = {"grant_type": "password", "username": username, "password": password}
    return urlencode({**form, "totp": totp} if totp else form)


async def officer(services: Services, username: str = "bob") -> None:
    await add_user(
        services.identity,
        UserCreate(username=username, password=PASSWORD, roles=["compliance_officer"]),
        actor="test",
    )


async def audit_actions(settings: Settings) -> list[str]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch("SELECT action FROM audit_log ORDER BY seq")
    finally:
        await conn.close()
    return [row["action"] for row in rows]


async def test_failures_back_off_then_lock_even_the_right_password_until_an_admin_unlocks(
    fast_client: AsyncTestClient[Any], services: Services, settings: Settings
) -> None:
    # Before: the right password still worked after 140 failures.
    await officer(services)
    locks_before = REGISTRY.get_sample_value("hub_identity_lockouts_total") or 0.0
    wrong = password_form("bob", "not the password")
    first = [await fast_client.post("/oauth/token", content=wrong, headers=FORM) for _ in range(3)]
    assert [a.status_code for a in first] == [400, 400, 400]
    early = await fast_client.post("/oauth/token", content=wrong, headers=FORM)
    assert (early.status_code, early.json()["code"]) == (429, "signin_throttled")
    assert int(early.headers["retry-after"]) >= 1
    await asyncio.sleep(FAST.base_delay_seconds + 0.1)
    locking = await fast_client.post("/oauth/token", content=wrong, headers=FORM)
    assert locking.status_code == 400
    right = await fast_client.post(
        "/oauth/token", content=password_form("bob", PASSWORD), headers=FORM
    )
    assert (right.status_code, right.json()["code"]) == (429, "signin_throttled")
    assert REGISTRY.get_sample_value("hub_identity_lockouts_total") == locks_before + 1
    assert "signin.locked" in await audit_actions(settings)

    admin = await admin_bearer(fast_client, services)
    listed = await fast_client.get(LOCKOUTS, headers=bearer(admin))
    assert listed.status_code == 200, listed.text
    (lock,) = listed.json()
    assert (lock["account"], lock["failures"]) == ("user:bob", 4)
    unlocked = await fast_client.delete(f"{LOCKOUTS}/user:bob", headers=bearer(admin))
    assert unlocked.status_code == 204
    again = await fast_client.delete(f"{LOCKOUTS}/user:bob", headers=bearer(admin))
    assert (again.status_code, again.json()["code"]) == (404, "lockout_not_found")
    after = await fast_client.post(
        "/oauth/token", content=password_form("bob", PASSWORD), headers=FORM
    )
    assert after.status_code == 200, after.text
    assert "signin.unlock" in await audit_actions(settings)


async def admin_bearer(client: AsyncTestClient[Any], services: Services) -> str:
    totp = await admin_user(services, "root")
    answer = await client.post(
        "/oauth/token", content=password_form("root", PASSWORD, totp.now()), headers=FORM
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


async def test_unknown_names_are_throttled_like_real_ones(
    fast_client: AsyncTestClient[Any],
) -> None:
    wrong = password_form("nobody-here", "guess")
    codes = [
        (await fast_client.post("/oauth/token", content=wrong, headers=FORM)).status_code
        for _ in range(4)
    ]
    assert codes == [400, 400, 400, 429]


async def test_every_password_or_totp_failure_reads_the_same(
    client: AsyncTestClient[Any], services: Services
) -> None:
    # Before: "wrong TOTP code" once the password was right (a password oracle).
    totp = await admin_user(services)
    code = totp.now()
    ok = await client.post(
        "/oauth/token", content=password_form("ada", PASSWORD, code), headers=FORM
    )
    assert ok.status_code == 200
    attempts = {
        "unknown user": password_form("nobody", PASSWORD, code),
        "wrong password": password_form("ada", "wrong password", code),
        "no totp": password_form("ada", PASSWORD),
        "wrong totp": password_form("ada", PASSWORD, "000000" if code != "000000" else "111111"),
        "replayed totp": password_form("ada", PASSWORD, code),
    }
    bodies = {}
    for name, form in attempts.items():
        answer = await client.post("/oauth/token", content=form, headers=FORM)
        assert answer.status_code == 400, name
        body = answer.json()
        bodies[name] = (body["type"], body["error"], body["error_description"], body["detail"])
    assert len(set(bodies.values())) == 1, bodies


async def test_refresh_reuse_revokes_the_logins_live_access_tokens(
    client: AsyncTestClient[Any], services: Services
) -> None:
    # Before: the reused login's access tokens kept working.
    totp = await admin_user(services)
    first = (
        await client.post(
            "/oauth/token", content=password_form("ada", PASSWORD, totp.now()), headers=FORM
        )
    ).json()
    refresh = urlencode({"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    second = (await client.post("/oauth/token", content=refresh, headers=FORM)).json()
    reuse = await client.post("/oauth/token", content=refresh, headers=FORM)
    assert reuse.status_code == 400
    for token in (first["access_token"], second["access_token"]):
        refused = await client.get(STATUS, headers=bearer(token))
        assert (refused.status_code, refused.json()["code"]) == (401, "token_revoked")


async def test_revocation_authenticates_the_caller_and_its_ownership(
    client: AsyncTestClient[Any], services: Services
) -> None:
    # Before: anyone holding a token could revoke it without authenticating (RFC 7009 §2.1).
    mine_secret = await agency_client(services, "transit-bot")
    other_secret = await agency_client(services, "other-bot")
    mine = await client_token(client, "transit-bot", mine_secret)
    theirs = await client_token(client, "other-bot", other_secret)
    anonymous = await client.post("/oauth/revoke", content=urlencode({"token": mine}), headers=FORM)
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "invalid_client")
    wrong_secret = await client.post(
        "/oauth/revoke", content=urlencode({"token": mine}), headers=basic("transit-bot", "x")
    )
    assert wrong_secret.status_code == 401
    foreign = await client.post(
        "/oauth/revoke",
        content=urlencode({"token": theirs}),
        headers=basic("transit-bot", mine_secret),
    )
    assert (foreign.status_code, foreign.json()["error"]) == (400, "unauthorized_client")
    own = await client.post(
        "/oauth/revoke",
        content=urlencode({"token": mine}),
        headers=basic("transit-bot", mine_secret),
    )
    assert own.status_code == 200
    refused = await client.get(STATUS, headers=bearer(mine))
    assert refused.json()["code"] == "token_revoked"
    assert (await client.get(STATUS, headers=bearer(theirs))).status_code == 403  # still valid


async def test_a_user_revokes_its_login_with_its_own_access_token(
    client: AsyncTestClient[Any], services: Services
) -> None:
    totp = await admin_user(services)
    login = (
        await client.post(
            "/oauth/token", content=password_form("ada", PASSWORD, totp.now()), headers=FORM
        )
    ).json()
    revoked = await client.post(
        "/oauth/revoke",
        content=urlencode({"token": login["refresh_token"]}),
        headers={**FORM, **bearer(login["access_token"])},
    )
    assert revoked.status_code == 200, revoked.text
    refused = await client.get(STATUS, headers=bearer(login["access_token"]))
    assert refused.json()["code"] == "token_revoked"  # the whole login, access token included
    refresh = urlencode({"grant_type": "refresh_token", "refresh_token": login["refresh_token"]})
    assert (await client.post("/oauth/token", content=refresh, headers=FORM)).status_code == 400


class BusyHasher:
    """A password hasher whose queue is always full (as under a flood of bogus logins)."""

    async def run(self, *_: object, **__: object) -> bool:
        raise UnavailableError("password hashing is busy", retry_after=1)


async def test_busy_hashing_answers_503_without_counting_a_failure(
    settings: Settings, services: Services
) -> None:
    await officer(services)
    built = build_services(settings)
    throttle = SigninThrottle(built.redis, rules=FAST)
    busy = dataclasses.replace(built.identity, throttle=throttle, hasher=BusyHasher())
    app = create_app(settings, services=dataclasses.replace(built, identity=busy))
    async with AsyncTestClient(app=app, base_url=BASE_URL) as client:
        answers = [
            await client.post("/oauth/token", content=password_form("bob", PASSWORD), headers=FORM)
            for _ in range(5)
        ]
    assert [a.status_code for a in answers] == [503] * 5
    attempt = await throttle.begin("user:bob")
    assert attempt.number == 1  # none of the five busy answers was counted
