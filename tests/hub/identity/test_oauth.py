"""OAuth 2.0 on the real app: grants, JWT access tokens, refresh rotation, revocation, keys."""

import asyncio
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import asyncpg
import msgspec
import pytest
from joserfc import jws, jwt
from joserfc.jwk import ECKey, OctKey
from litestar.testing import AsyncTestClient

from hub.app import create_app
from hub.identity.oauth import rotate_keys
from hub.identity.oauth.schemas import Grantee
from hub.kit.clock import utcnow
from hub.runtime import Services
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
BUNDLES = "/v1/admin/policy/bundles"


async def audit_actions(settings: Settings) -> list[str]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch("SELECT action FROM audit_log ORDER BY seq")
    finally:
        await conn.close()
    return [row["action"] for row in rows]


async def test_client_credentials_token_carries_registry_attributes_and_policy_applies(
    client: AsyncTestClient[Any], services: Services, settings: Settings
) -> None:
    secret = await agency_client(services)
    answer = await client.post(
        "/oauth/token",
        content=b"grant_type=client_credentials",
        headers=basic("transit-bot", secret),
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == settings.access_token_ttl_seconds
    assert "refresh_token" not in body
    jwks = (await client.get("/.well-known/jwks.json")).json()
    key = ECKey.import_key(jwks["keys"][0])
    claims = jwt.decode(body["access_token"], key, algorithms=["ES256"]).claims
    assert claims["sub"] == "transit-bot"
    assert claims["roles"] == ["agency"]
    assert (claims["agency"], claims["jurisdictions"]) == ("transit-authority", ["central"])
    assert (claims["clearance"], claims["purpose"]) == (2, "traffic")
    assert (claims["iss"], claims["aud"]) == (settings.jwt_issuer, settings.jwt_audience)
    assert claims["exp"] - claims["iat"] == settings.access_token_ttl_seconds
    assert claims["jti"]
    # An agency may not reach admin routes: authenticated (not 401) but denied by policy.
    denied = await client.get(BUNDLES, headers=bearer(body["access_token"]))
    assert denied.status_code == 403
    assert denied.json()["code"] == "policy_denied"
    assert denied.json()["decision_id"]
    assert "client.add" in await audit_actions(settings)
    assert "token.issue" in await audit_actions(settings)


async def test_wrong_client_secret_and_bad_requests_are_oauth_errors(
    client: AsyncTestClient[Any], services: Services
) -> None:
    await agency_client(services)
    wrong = await client.post(
        "/oauth/token",
        content=b"grant_type=client_credentials",
        headers=basic("transit-bot", "hubcs_wrong"),
    )
    unknown = await client.post(
        "/oauth/token",
        content=b"grant_type=client_credentials",
        headers=basic("nobody", "hubcs_wrong"),
    )
    bad_grant = await client.post("/oauth/token", content=b"grant_type=implicit", headers=FORM)
    not_form = await client.post("/oauth/token", json={"grant_type": "client_credentials"})
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    assert wrong.json()["type"] == "/problems/oauth_invalid_client"
    assert (unknown.status_code, unknown.json()["error"]) == (401, "invalid_client")
    assert (bad_grant.status_code, bad_grant.json()["error"]) == (400, "unsupported_grant_type")
    assert (not_form.status_code, not_form.json()["error"]) == (400, "invalid_request")


async def test_password_totp_refresh_rotation_reuse_and_revocation(
    client: AsyncTestClient[Any], services: Services, settings: Settings
) -> None:
    totp = await admin_user(services)
    form = {"grant_type": "password", "username": "ada", "password": PASSWORD}
    no_code = await client.post("/oauth/token", content=urlencode(form), headers=FORM)
    assert (no_code.status_code, no_code.json()["error"]) == (400, "invalid_grant")
    wrong_pw = await client.post(
        "/oauth/token",
        content=urlencode({**form, "password": "nope", "totp": totp.now()}),
        headers=FORM,
    )
    assert wrong_pw.status_code == 400
    code = totp.now()
    login = await client.post(
        "/oauth/token", content=urlencode({**form, "totp": code}), headers=FORM
    )
    assert login.status_code == 200, login.text
    replay = await client.post(
        "/oauth/token", content=urlencode({**form, "totp": code}), headers=FORM
    )
    assert replay.status_code == 400  # a TOTP code is good once
    first = login.json()
    assert (await client.get(STATUS, headers=bearer(first["access_token"]))).status_code == 200

    refreshed = await client.post(
        "/oauth/token",
        content=urlencode({"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}),
        headers=FORM,
    )
    assert refreshed.status_code == 200, refreshed.text
    second = refreshed.json()
    assert second["refresh_token"] != first["refresh_token"]
    # Re-using the spent refresh token means it leaked: the whole login is revoked.
    reuse = await client.post(
        "/oauth/token",
        content=urlencode({"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}),
        headers=FORM,
    )
    assert (reuse.status_code, reuse.json()["error"]) == (400, "invalid_grant")
    after = await client.post(
        "/oauth/token",
        content=urlencode(
            {"grant_type": "refresh_token", "refresh_token": second["refresh_token"]}
        ),
        headers=FORM,
    )
    assert after.status_code == 400

    # Revocation authenticates the client (RFC 7009 §2.1) and revokes only its own tokens.
    secret = await agency_client(services)
    agency_token = await client_token(client, "transit-bot", secret)
    revoked = await client.post(
        "/oauth/revoke",
        content=urlencode({"token": agency_token}),
        headers=basic("transit-bot", secret),
    )
    assert revoked.status_code == 200
    refused = await client.get(STATUS, headers=bearer(agency_token))
    assert (refused.status_code, refused.json()["code"]) == (401, "token_revoked")
    unknown = await client.post(
        "/oauth/revoke", content=b"token=whatever", headers=basic("transit-bot", secret)
    )
    assert unknown.status_code == 200  # RFC 7009: unknown tokens are not an error
    actions = await audit_actions(settings)
    assert {"user.add", "token.issue", "token.refresh_reuse", "token.revoke"} <= set(actions)


async def test_expired_forged_and_foreign_tokens_get_distinct_codes(
    client: AsyncTestClient[Any], services: Services
) -> None:
    grantee = Grantee(sub="ada", kind="user", roles=["admin"])
    old, _ = await services.identity.issuer.issue(grantee, now=utcnow() - timedelta(hours=1))
    good, claims = await services.identity.issuer.issue(grantee, now=utcnow())
    kid = jws.extract_compact(good.encode()).headers()["kid"]
    rogue = ECKey.generate_key("P-256")
    payload = msgspec.to_builtins(claims)
    forged = jwt.encode({"alg": "ES256", "kid": kid}, payload, rogue)
    foreign = jwt.encode({"alg": "ES256", "kid": "someone-else"}, payload, rogue)
    hs256 = jwt.encode(
        {"alg": "HS256", "kid": kid}, payload, OctKey.import_key("x" * 32), algorithms=["HS256"]
    )
    expected = {
        good: (200, None),
        old: (401, "token_expired"),
        forged: (401, "token_signature_invalid"),
        foreign: (401, "token_key_unknown"),
        hs256: (401, "token_invalid"),
        "a.b.c": (401, "token_invalid"),
    }
    for token, (status, code) in expected.items():
        answer = await client.get(STATUS, headers=bearer(token))
        assert answer.status_code == status, answer.text
        if code:
            assert answer.json()["code"] == code
            assert answer.headers["content-type"].startswith("application/problem+json")


async def test_key_rotation_keeps_old_tokens_valid_until_the_overlap_ends(
    client: AsyncTestClient[Any], services: Services, settings: Settings
) -> None:
    grantee = Grantee(sub="ada", kind="user", roles=["admin"])
    before, _ = await services.identity.issuer.issue(grantee, now=utcnow())
    new_key = await rotate_keys(services.identity, actor="test")
    after, _ = await services.identity.issuer.issue(grantee, now=utcnow())
    kids = {k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}
    assert new_key.kid in kids
    assert len(kids) == 2
    assert (
        jwt.decode(
            after,
            ECKey.import_key(
                next(
                    k
                    for k in (await client.get("/.well-known/jwks.json")).json()["keys"]
                    if k["kid"] == new_key.kid
                )
            ),
            algorithms=["ES256"],
        ).header["kid"]
        == new_key.kid
    )
    for token in (before, after):
        assert (await client.get(STATUS, headers=bearer(token))).status_code == 200
    # The overlap ends: the retired key leaves the JWKS and its tokens are refused.
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(
            "UPDATE jwt_signing_key SET verify_until = now() - interval '1 second' WHERE kid <> $1",
            new_key.kid,
        )
    finally:
        await conn.close()
    async with AsyncTestClient(app=create_app(settings), base_url=BASE_URL) as fresh:
        gone = await fresh.get(STATUS, headers=bearer(before))
        kept = await fresh.get(STATUS, headers=bearer(after))
        jwks = (await fresh.get("/.well-known/jwks.json")).json()
    assert (gone.status_code, gone.json()["code"]) == (401, "token_key_unknown")
    assert kept.status_code == 200
    assert [k["kid"] for k in jwks["keys"]] == [new_key.kid]
    assert "key.rotate" in await audit_actions(settings)


async def test_a_revoked_token_is_refused_by_another_instance_within_seconds(
    settings: Settings, services: Services
) -> None:
    totp = await admin_user(services)
    one = AsyncTestClient(app=create_app(settings), base_url=BASE_URL)
    two = AsyncTestClient(app=create_app(settings), base_url=BASE_URL)
    async with one, two:
        login = await one.post(
            "/oauth/token",
            content=urlencode(
                {
                    "grant_type": "password",
                    "username": "ada",
                    "password": PASSWORD,
                    "totp": totp.now(),
                }
            ),
            headers=FORM,
        )
        token = login.json()["access_token"]
        assert (await two.get(STATUS, headers=bearer(token))).status_code == 200  # now cached
        await one.post(
            "/oauth/revoke",
            content=urlencode({"token": token}),
            headers={**FORM, **bearer(token)},  # a user revokes its own token
        )
        started = time.monotonic()
        while (await two.get(STATUS, headers=bearer(token))).status_code == 200:
            assert time.monotonic() - started < 3, "instance two still accepts the revoked token"
            await asyncio.sleep(0.1)
        refused = await two.get(STATUS, headers=bearer(token))
    assert refused.json()["code"] == "token_revoked"


async def test_revoking_a_client_refuses_its_live_tokens_and_new_grants(
    client: AsyncTestClient[Any], services: Services
) -> None:
    from hub.identity.oauth import revoke_client

    secret = await agency_client(services)
    token = await client_token(client, "transit-bot", secret)
    await revoke_client(services.identity, "transit-bot", actor="test")
    await asyncio.sleep(1.1)  # the per-process revocation cache
    refused = await client.get(BUNDLES, headers=bearer(token))
    again = await client.post(
        "/oauth/token",
        content=b"grant_type=client_credentials",
        headers=basic("transit-bot", secret),
    )
    assert (refused.status_code, refused.json()["code"]) == (401, "token_revoked")
    assert again.status_code == 401


async def test_static_tokens_still_work(client: AsyncTestClient[Any]) -> None:
    answer = await client.get(STATUS, headers=bearer("hubt_not-a-known-token"))
    assert (answer.status_code, answer.json()["code"]) == (401, "token_invalid")
