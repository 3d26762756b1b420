"""`hub nodes add|list|revoke` through the real CLI on a real database."""

import json
from pathlib import Path

import pytest

from hub.settings import Settings
from tests.support import run_hub

pytestmark = pytest.mark.db


async def test_add_list_revoke_round_trip(settings: Settings, tmp_path: Path) -> None:
    env = {"HUB_DATABASE_URL": settings.database_url, "HUB_REDIS_URL": settings.redis_url}
    key = tmp_path / "cam.key"
    added = await run_hub(
        "nodes", "add", "cam-box-7", "--generate-key", str(key), "--json", env=env
    )
    assert added.returncode == 0, added.stderr
    node = json.loads(added.stdout)
    assert node["status"] == "active"
    assert key.stat().st_mode & 0o777 == 0o600
    assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")

    again = await run_hub(
        "nodes", "add", "cam-box-7", "--generate-key", str(tmp_path / "k2"), env=env
    )
    assert again.returncode == 1
    assert "already exists" in again.stderr

    listed = json.loads((await run_hub("nodes", "list", "--json", env=env)).stdout)
    assert [n["name"] for n in listed] == ["cam-box-7"]

    revoked = await run_hub(
        "nodes", "revoke", "cam-box-7", "--reason", "decommissioned", "--json", env=env
    )
    assert revoked.returncode == 0, revoked.stderr
    assert json.loads(revoked.stdout)["status"] == "revoked"
    missing = await run_hub("nodes", "revoke", "no-such-node", "--reason", "x", env=env)
    assert (missing.returncode, "no edge node" in missing.stderr) == (1, True)


async def test_add_refuses_a_key_that_is_not_ed25519(settings: Settings, tmp_path: Path) -> None:
    env = {"HUB_DATABASE_URL": settings.database_url, "HUB_REDIS_URL": settings.redis_url}
    bad = tmp_path / "bad.pub"
    bad.write_text("bm90IGEga2V5")
    done = await run_hub("nodes", "add", "cam-x", "--public-key", str(bad), env=env)
    assert done.returncode == 1
    assert "32 bytes" in done.stderr


async def test_a_refused_registration_leaves_no_key_and_an_existing_key_is_kept(
    settings: Settings, tmp_path: Path
) -> None:
    env = {"HUB_DATABASE_URL": settings.database_url, "HUB_REDIS_URL": settings.redis_url}
    first = tmp_path / "first.key"
    assert (
        await run_hub("nodes", "add", "cam-dup", "--generate-key", str(first), env=env)
    ).returncode == 0
    second = tmp_path / "second.key"
    refused = await run_hub("nodes", "add", "cam-dup", "--generate-key", str(second), env=env)
    assert refused.returncode == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.key"]
    before = first.read_bytes()
    clash = await run_hub("nodes", "add", "cam-other", "--generate-key", str(first), env=env)
    assert clash.returncode == 2
    assert "refusing to overwrite" in clash.stderr
    assert "Traceback" not in clash.stderr
    assert first.read_bytes() == before
