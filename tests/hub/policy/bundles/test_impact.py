"""Policy impact before activation: logged decisions replayed under an uploaded bundle."""

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from hub.kit.errors import ConflictError, NotFoundError
from hub.policy.bundles import activate_bundle
from hub.policy.bundles.impact import bundle_impact
from hub.runtime import Services
from hub.settings import Settings
from tests.hub.delivery.harness import settings_env
from tests.hub.policy.bundles.test_service import ADMIN, upload

pytestmark = [pytest.mark.db, pytest.mark.redis]

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


async def log_authz(services: Services, decision_id: str, role: str, *, at: datetime) -> None:
    """A logged authz decision that allowed `role` (as the active bundle said then)."""
    subject = {"id": f"{role}-1", "kind": "user", "roles": [role]}
    await services.db.pool.execute(
        """INSERT INTO policy_decisions (decision_id, at, entrypoint, revision, latency_us,
                                         input, result)
           VALUES ($1, $2, 'hub/authz/decision', 'r0', 10, $3::jsonb, $4::jsonb)""",
        decision_id,
        at,
        msgspec.json.encode({"subject": subject, "request": {"method": "GET"}}).decode(),
        '{"allow": true, "reason": "role allowed"}',
    )


async def test_impact_counts_and_lists_what_would_change(services: Services) -> None:
    await log_authz(services, "d-admin", "admin", at=NOW - timedelta(minutes=5))
    await log_authz(services, "d-operator", "operator", at=NOW - timedelta(minutes=3))
    await log_authz(services, "d-old", "operator", at=NOW - timedelta(hours=30))
    revision = await upload(services, "r2", roles=("admin",))  # operators lose access

    report = await bundle_impact(services.db, revision, now=NOW, hours=24, limit=100)

    assert (report.replayed, report.changed) == (2, 1)  # d-old is outside the window
    [change] = report.changes
    assert (change.decision_id, change.recipient) == ("d-operator", "operator-1")
    assert (change.before, change.after) == ("allow", "deny")
    assert {d.path for d in change.differences} == {"/allow", "/reason"}
    assert [(c.key, c.replayed, c.changed) for c in report.by_entrypoint] == [
        ("hub/authz/decision", 2, 1)
    ]
    assert [(c.key, c.changed) for c in report.by_recipient] == [
        ("operator-1", 1),
        ("admin-1", 0),
    ]


async def test_only_an_uploaded_bundle_has_an_impact(services: Services) -> None:
    with pytest.raises(NotFoundError):
        await bundle_impact(services.db, "nope", now=NOW, hours=1, limit=10)
    revision = await upload(services, "r3")
    await activate_bundle(services.db, services.redis, revision, actor=ADMIN)
    with pytest.raises(ConflictError):
        await bundle_impact(services.db, revision, now=NOW, hours=1, limit=10)


@pytest.mark.slow
async def test_the_cli_prints_the_report(services: Services, settings: Settings) -> None:
    now = datetime.now(UTC)
    await log_authz(services, "d-operator", "operator", at=now - timedelta(minutes=1))
    revision = await upload(services, "r4", roles=("admin",))
    env = settings_env(settings)
    args = [sys.executable, "-m", "hub.cli.main", "policy", "impact", revision]
    as_json = await asyncio.to_thread(
        subprocess.run, [*args, "--json"], env=env, capture_output=True, text=True, check=True
    )
    assert msgspec.json.decode(as_json.stdout)["changed"] == 1
    text = await asyncio.to_thread(
        subprocess.run, args, env=env, capture_output=True, text=True, check=True
    )
    assert text.stdout.startswith("r4: 1 of 1 decisions since")
    assert "d-operator" in text.stdout
    assert "allow -> deny" in text.stdout
