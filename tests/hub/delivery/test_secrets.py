"""Agency secrets at rest: sealed in the stored row, opened only to send, re-sealed after a
master key rotation, and sealed by migration 0016 when they were stored in clear."""

import asyncio
import importlib
import json
import subprocess
import sys
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest

from hub.delivery.agencies import AgencyDirectory, add_agency, get_agency, reseal_agencies
from hub.delivery.schemas import AgencyCreate
from hub.delivery.secrets import (
    KEY,
    SecretSealError,
    open_config,
    seal_config,
    sealed_paths,
)
from hub.retention import KeyRing
from hub.runtime import Services
from hub.settings import Settings
from tests.hub.delivery.harness import Receivers, settings_env

OAUTH_SECRET = "oauth-client-secret-do-not-store"
migration = importlib.import_module("migrations.versions.m2026_11_22_0016_agency_secrets")


def ring(folder: Path, current: str) -> KeyRing:
    """A key ring in `folder` whose current master key is `current`."""
    return KeyRing.load(folder, current_id=current)


def test_sealed_fields_open_only_for_their_agency_and_path(tmp_path: Path) -> None:
    keys, agency = ring(tmp_path, "1"), uuid4()
    config = {"url": "https://a.example/x", "secrets": ["whsec_a", "whsec_b"], "oauth2": None}

    sealed = seal_config(config, paths=["secrets[]"], keys=keys, agency_id=agency)

    assert "whsec_" not in json.dumps(sealed)
    assert sealed["url"] == config["url"]
    assert sealed_paths(sealed) == ["secrets[]", "secrets[]"]
    assert open_config(sealed, keys=keys, agency_id=agency) == config
    with pytest.raises(SecretSealError):
        open_config(sealed, keys=keys, agency_id=uuid4())  # copied to another agency
    moved = {"url": sealed["secrets"][0], "secrets": []}
    with pytest.raises(SecretSealError):
        open_config(moved, keys=keys, agency_id=agency)  # copied to another field


def test_resealing_moves_every_sealed_field_to_the_current_key(tmp_path: Path) -> None:
    old, agency = ring(tmp_path, "1"), uuid4()
    sealed = seal_config({"token": "t0ken"}, paths=["token"], keys=old, agency_id=agency)
    new = ring(tmp_path, "2")

    resealed = seal_config(sealed, paths=[], keys=new, agency_id=agency)

    assert sealed["token"][KEY] == "1"
    assert resealed["token"][KEY] == "2"
    assert open_config(resealed, keys=new, agency_id=agency) == {"token": "t0ken"}
    only_old = KeyRing(current_id="1", masters={"1": old.masters["1"]}, subject_key=b"x" * 32)
    with pytest.raises(SecretSealError):
        open_config(resealed, keys=only_old, agency_id=agency)


def rest_create(receivers: Receivers) -> AgencyCreate:
    config = receivers.config("rest") | {
        "oauth2": {
            "token_url": f"{receivers.url}/oauth/token",
            "client_id": "hub",
            "client_secret": OAUTH_SECRET,
        },
        "client_cert_file": "/etc/hub/tls/client.pem",
        "client_key_file": "/etc/hub/tls/client-key.pem",
    }
    return AgencyCreate(name="police-north", kind="rest", config=config)


async def stored_row(settings: Settings, name: str) -> bytes:
    """The agency's config exactly as PostgreSQL holds it."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        text: str = await conn.fetchval("SELECT config::text FROM agency WHERE name = $1", name)
    finally:
        await conn.close()
    return text.encode()


@pytest.mark.db
@pytest.mark.redis
@pytest.mark.commits
async def test_registered_secrets_are_not_in_the_stored_row_and_open_for_the_worker(
    settings: Settings, services: Services, receivers: Receivers
) -> None:
    create = rest_create(receivers)
    await add_agency(services.db, services.delivery.adapters, create, actor="test")

    row = await stored_row(settings, "police-north")
    for secret in (receivers.secret, OAUTH_SECRET, "client-key.pem"):
        assert secret.encode() not in row
    assert b"client.pem" in row  # the certificate is public: left in clear
    _, agency = await get_agency(services.db, "police-north")
    parsed = AgencyDirectory(services.db, services.delivery.adapters).config(agency)
    assert parsed.secrets == (receivers.secret,)
    assert parsed.oauth2.client_secret == OAUTH_SECRET
    assert parsed.client_key_file == "/etc/hub/tls/client-key.pem"


@pytest.mark.db
@pytest.mark.redis
@pytest.mark.commits
async def test_reseal_after_rotation_seals_under_the_new_key_and_audits(
    settings: Settings, services: Services, receivers: Receivers
) -> None:
    await add_agency(services.db, services.delivery.adapters, rest_create(receivers), actor="t")
    rotated = ring(services.retention.keys_dir, "rotated")

    done = await reseal_agencies(
        services.db, services.delivery.adapters, actor="test", keys=lambda: rotated
    )
    again = await reseal_agencies(
        services.db, services.delivery.adapters, actor="test", keys=lambda: rotated
    )

    assert done.resealed == ["police-north"]
    assert again.resealed == []
    stored = json.loads(await stored_row(settings, "police-north"))
    assert {node[KEY] for node in stored["secrets"]} == {"rotated"}
    assert stored["oauth2"]["client_secret"][KEY] == "rotated"
    _, agency = await get_agency(services.db, "police-north")
    directory = AgencyDirectory(services.db, services.delivery.adapters, keys=lambda: rotated)
    assert directory.config(agency).oauth2.client_secret == OAUTH_SECRET
    conn = await asyncpg.connect(settings.database_url)
    try:
        actions = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = $1", "agency.reseal"
        )
    finally:
        await conn.close()
    assert actions == 2


@pytest.mark.db
@pytest.mark.redis
@pytest.mark.commits
async def test_migration_0016_seals_secrets_stored_in_clear(
    settings: Settings, services: Services, receivers: Receivers
) -> None:
    create = rest_create(receivers)
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(
            """INSERT INTO agency (id, name, adapter_kind, endpoint, config)
               VALUES ($1, 'police-north', 'rest', $2, $3::jsonb)""",
            uuid4(),
            create.config["url"],
            json.dumps(create.config),
        )
        assert OAUTH_SECRET.encode() in await stored_row(settings, "police-north")
        async with conn.transaction():
            changed = await migration.seal_rows(conn, lambda: services.retention.keys)
            unchanged = await migration.seal_rows(conn, lambda: services.retention.keys)
    finally:
        await conn.close()

    assert (changed, unchanged) == (1, 0)
    row = await stored_row(settings, "police-north")
    assert OAUTH_SECRET.encode() not in row
    assert receivers.secret.encode() not in row
    _, agency = await get_agency(services.db, "police-north")
    parsed = AgencyDirectory(services.db, services.delivery.adapters).config(agency)
    assert parsed.oauth2.client_secret == OAUTH_SECRET


@pytest.mark.db
@pytest.mark.redis
@pytest.mark.commits
async def test_hub_agencies_reseal_seals_a_clear_row_and_prints_what_it_did(
    settings: Settings, services: Services, receivers: Receivers
) -> None:
    create = rest_create(receivers)
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(
            """INSERT INTO agency (id, name, adapter_kind, endpoint, config)
               VALUES ($1, 'police-north', 'rest', $2, $3::jsonb)""",
            uuid4(),
            create.config["url"],
            json.dumps(create.config),
        )
    finally:
        await conn.close()

    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "hub.cli.main", "agencies", "reseal", "--json"],
        env=settings_env(settings),
        capture_output=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout) == {
        "key": settings.pii_master_key_id,
        "resealed": ["police-north"],
    }
    row = await stored_row(settings, "police-north")
    assert OAUTH_SECRET.encode() not in row
    assert receivers.secret.encode() not in row
    _, agency = await get_agency(services.db, "police-north")
    parsed = AgencyDirectory(services.db, services.delivery.adapters).config(agency)
    assert parsed.oauth2.client_secret == OAUTH_SECRET
