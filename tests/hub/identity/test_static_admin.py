"""Static admin tokens: refused unless made with the admin's password and TOTP code and
expiring within hours (before: they skipped TOTP and never expired)."""

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from hub.app import create_app
from hub.identity.oauth import UserCreate, add_user
from hub.identity.tokens import (
    MAX_ADMIN_HOURS,
    TokenEntry,
    TokenStore,
    append_token,
    new_token,
    read_tokens,
    token_hash,
)
from hub.kit.errors import AuthenticationError
from hub.runtime import Services
from hub.settings import Settings
from tests.hub.identity.builders import PASSWORD, admin_token_fields, admin_user
from tests.support import BASE_URL

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def stored(path: Path, **fields: object) -> str:
    token = new_token()
    entry = {"sha256": token_hash(token), "subject": "ada", "roles": ["admin"], **fields}
    append_token(path, msgspec.convert(entry, TokenEntry))
    return token


def refusal(store: TokenStore, token: str) -> str | None:
    try:
        store.subject_for(token, now=NOW)
    except AuthenticationError as exc:
        return exc.code
    return None


def test_an_admin_token_needs_a_second_factor_and_a_short_life(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    hour = timedelta(hours=1)
    bare = stored(path)  # what `hub tokens create --role admin` used to write
    no_factor = stored(path, created_at=NOW - hour, expires_at=NOW + hour)
    no_expiry = stored(path, created_at=NOW, second_factor="totp:ada")
    too_long = stored(
        path,
        created_at=NOW - hour,
        expires_at=NOW - hour + timedelta(hours=MAX_ADMIN_HOURS + 1),
        second_factor="totp:ada",
    )
    good = stored(path, created_at=NOW - hour, expires_at=NOW + hour, second_factor="totp:ada")
    operator = stored(path, roles=["operator"])  # other roles are unchanged
    store = TokenStore(path)
    for token in (bare, no_factor, no_expiry, too_long):
        assert refusal(store, token) == "static_admin_token_refused"
    assert refusal(store, good) is None
    assert refusal(store, operator) is None
    (parsed, *_) = [e for e in read_tokens(path).token if e.sha256 == token_hash(good)]
    assert parsed.second_factor == "totp:ada"


def hub_tokens(env: dict[str, str], *args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    """The real `hub tokens` command with answers to its prompts."""
    return subprocess.run(  # noqa: S603 (our own CLI)
        [sys.executable, "-m", "hub.cli.main", "tokens", *args],
        env={"PATH": "/usr/bin:/bin", **env},
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.mark.db
@pytest.mark.redis
async def test_the_cli_makes_an_admin_token_only_after_password_and_totp(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    totp = await admin_user(services)
    await add_user(
        services.identity,
        UserCreate(username="olga", password=PASSWORD, roles=["operator"]),
        actor="test",
    )
    tokens = tmp_path / "tokens.toml"
    env = {
        "HUB_DATABASE_URL": settings.database_url,
        "HUB_REDIS_URL": settings.redis_url,
        "HUB_REDIS_PREFIX": settings.redis_prefix,
        "HUB_SECRETS_DIR": settings.secrets_dir,
        "HUB_API_TOKENS_FILE": str(tokens),
    }

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return hub_tokens(env, "create", *args, "--role", "admin", "--json", stdin=stdin)

    forever = await asyncio.to_thread(run, "ada")
    assert forever.returncode == 2
    assert "--expires-in-hours" in forever.stderr
    wrong = await asyncio.to_thread(
        run, "ada", "--expires-in-hours", "2", stdin=f"{PASSWORD}\n000000\n"
    )
    assert wrong.returncode == 1
    assert "wrong username, password or TOTP code" in wrong.stderr
    not_admin = await asyncio.to_thread(
        run, "olga", "--expires-in-hours", "2", stdin=f"{PASSWORD}\n123456\n"
    )
    assert not_admin.returncode == 1
    assert "only an admin enrolled in TOTP" in not_admin.stderr
    assert not tokens.exists() or not read_tokens(tokens).token
    made = await asyncio.to_thread(
        run, "ada", "--expires-in-hours", "2", stdin=f"{PASSWORD}\n{totp.now()}\n"
    )
    assert made.returncode == 0, made.stderr
    token = msgspec.json.decode(made.stdout.strip().splitlines()[-1])["token"]
    (entry,) = read_tokens(tokens).token
    assert entry.second_factor == "totp:ada"
    assert entry.expires_at is not None
    assert entry.created_at is not None
    assert entry.expires_at - entry.created_at == timedelta(hours=2)
    app = create_app(msgspec.structs.replace(settings, api_tokens_file=str(tokens)))
    async with AsyncTestClient(app=app, base_url=BASE_URL) as client:
        answer = await client.get(
            "/v1/admin/policy/status", headers={"Authorization": f"Bearer {token}"}
        )
    assert answer.status_code == 200, answer.text


@pytest.mark.db
@pytest.mark.redis
async def test_a_bare_admin_entry_is_refused_by_the_api(settings: Settings, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.toml"
    bare = stored(tokens)
    good = stored(tokens, **admin_token_fields())
    app = create_app(msgspec.structs.replace(settings, api_tokens_file=str(tokens)))
    async with AsyncTestClient(app=app, base_url=BASE_URL) as client:
        refused: Any = await client.get(
            "/v1/admin/policy/status", headers={"Authorization": f"Bearer {bare}"}
        )
        allowed = await client.get(
            "/v1/admin/policy/status", headers={"Authorization": f"Bearer {good}"}
        )
    assert (refused.status_code, refused.json()["code"]) == (401, "static_admin_token_refused")
    assert allowed.status_code == 200
