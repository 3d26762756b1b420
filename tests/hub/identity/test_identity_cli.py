"""`hub clients|users|keys` through the real CLI on a real database."""

import asyncio
import json
import subprocess
import sys
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from hub.settings import Settings
from tests.hub.identity.builders import PASSWORD, client_token

pytestmark = [pytest.mark.db, pytest.mark.redis]


async def hub(settings: Settings, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run the `hub` CLI in a subprocess with our database and Redis prefix."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HUB_DATABASE_URL": settings.database_url,
        "HUB_REDIS_URL": settings.redis_url,
        "HUB_REDIS_PREFIX": settings.redis_prefix,
        "HUB_SECRETS_DIR": settings.secrets_dir,
    }
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "hub.cli.main", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


async def test_clients_add_list_revoke(settings: Settings, client: AsyncTestClient[Any]) -> None:
    added = await hub(
        settings,
        "clients",
        "add",
        "police-bot",
        "--agency",
        "police-north",
        "--role",
        "agency",
        "--jurisdiction",
        "north",
        "--clearance",
        "3",
        "--purpose",
        "investigation",
        "--json",
    )
    assert added.returncode == 0, added.stderr
    made = json.loads(added.stdout)
    secret = made["client_secret"]
    assert secret.startswith("hubcs_")
    assert made["client"]["jurisdictions"] == ["north"]
    assert await client_token(client, "police-bot", secret)
    listed = await hub(settings, "clients", "list", "--json")
    assert secret not in listed.stdout
    assert [c["client_id"] for c in json.loads(listed.stdout)] == ["police-bot"]
    twice = await hub(settings, "clients", "add", "police-bot")
    assert twice.returncode == 1
    bad_role = await hub(settings, "clients", "add", "x", "--role", "root")
    assert bad_role.returncode == 2
    revoked = await hub(settings, "clients", "revoke", "police-bot", "--json")
    assert json.loads(revoked.stdout)["status"] == "revoked"


async def test_users_add_list_disable_and_keys(settings: Settings) -> None:
    admin = await hub(
        settings,
        "users",
        "add",
        "ada",
        "--role",
        "admin",
        "--password-stdin",
        "--json",
        stdin=PASSWORD + "\n",
    )
    assert admin.returncode == 0, admin.stderr
    assert json.loads(admin.stdout)["totp_uri"].startswith("otpauth://totp/")
    operator = await hub(
        settings,
        "users",
        "add",
        "olga",
        "--role",
        "operator",
        "--password-stdin",
        "--json",
        stdin=PASSWORD + "\n",
    )
    assert json.loads(operator.stdout)["totp_uri"] is None
    short = await hub(
        settings, "users", "add", "tim", "--role", "operator", "--password-stdin", stdin="short\n"
    )
    assert short.returncode == 2
    listed = json.loads((await hub(settings, "users", "list", "--json")).stdout)
    assert [(u["username"], u["totp"]) for u in listed] == [("ada", True), ("olga", False)]
    disabled = await hub(settings, "users", "disable", "olga", "--json")
    assert json.loads(disabled.stdout)["status"] == "disabled"

    first = json.loads((await hub(settings, "keys", "rotate", "--json")).stdout)
    second = json.loads((await hub(settings, "keys", "rotate", "--json")).stdout)
    keys = json.loads((await hub(settings, "keys", "list", "--json")).stdout)
    assert [k["kid"] for k in keys] == [second["kid"], first["kid"]]
    assert [k["signing"] for k in keys] == [True, False]
    assert keys[1]["verify_until"] is not None
