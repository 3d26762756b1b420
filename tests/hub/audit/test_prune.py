"""Pruning by retention policy: the sweep deletes audit entries past `audit_entry`'s retention
only below the latest checkpoint, and what remains still verifies."""

import json

import pytest

from hub.audit import public_key_in, verify_log
from hub.retention.schemas import SweepReport
from hub.retention.sweep import run_sweep
from hub.runtime import Services
from tests.hub.audit.builders import append_many, sealer
from tests.hub.retention.builders import activate_default_policy, sweep_deps
from tests.support import free_port

pytestmark = pytest.mark.db


async def test_the_retention_sweep_prunes_below_the_checkpoint(services: Services) -> None:
    activate_default_policy(services)
    await append_many(services, 300, tag="old")
    async with services.db.pool.acquire() as conn:  # older than the default 2,555 days
        await conn.execute("UPDATE audit_log SET at = at - interval '3000 days'")
    await append_many(services, 5, tag="young")
    await sealer(services).run(force_checkpoint=True)
    planned = await run_sweep(sweep_deps(services), dry_run=True)
    assert audit_rows(planned) == 256  # what the sweep will delete, not the 300 past retention

    report = await run_sweep(sweep_deps(services), dry_run=False)

    audit = next(c for c in report.classes if c.data_class == "audit_entry")
    assert audit.rows == 256  # the old entries a whole tile of the checkpoint covers
    async with services.db.pool.acquire() as conn:
        left = await conn.fetchval("SELECT count(*) FROM audit_log WHERE target LIKE 'old:%'")
        pruned = await conn.fetchval("SELECT pruned_below FROM audit_tree")
    assert (left, pruned) == (300 - 256, 256)
    async with services.db.pool.acquire() as conn:
        said = await conn.fetchval("SELECT detail FROM audit_log WHERE action = 'audit.prune'")
    assert json.loads(said) == {"pruned_below": 256, "was": 0}
    await sealer(services).run(force_checkpoint=True)
    verified = await verify_log(services.db.pool, key=public_key_in(services.settings.secrets_dir))
    assert verified.ok, verified.problem
    assert verified.pruned_below == 256


async def test_the_sweep_keeps_what_a_lagging_witness_still_needs(services: Services) -> None:
    activate_default_policy(services)
    await append_many(services, 300, tag="old")
    async with services.db.pool.acquire() as conn:
        await conn.execute("UPDATE audit_log SET at = at - interval '3000 days'")
    await sealer(services).run(force_checkpoint=True)  # the witness has none of it yet
    # Nothing listens on the port taken here: the witness is away.
    away = sweep_deps(services, audit_witness=f"http://127.0.0.1:{free_port()}/add-checkpoint")

    assert audit_rows(await run_sweep(away, dry_run=True)) == 0
    assert audit_rows(await run_sweep(away, dry_run=False)) == 0  # it holds 0: every leaf counts
    assert audit_rows(await run_sweep(sweep_deps(services), dry_run=False)) == 256


def audit_rows(report: SweepReport) -> int:
    return next(c.rows for c in report.classes if c.data_class == "audit_entry")
