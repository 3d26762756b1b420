"""The audit checkpoint and witness gauges on real PostgreSQL: the alerts' inputs follow the
newest signed checkpoint and the oldest one the witness lacks; a checkpoint older than 3
intervals (or entries never checkpointed) is stale, and a witness that lacks one that old is
behind."""

import socket
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from hub.audit import AuditEntry, append_entry
from hub.kit.clock import utcnow
from hub.observability.jobs import (
    refresh_checkpoint_gauges,
    refresh_gauges_job,
    refresh_witness_gauges,
)
from hub.observability.metrics import ObservabilityMetrics
from hub.observability.slo import load_spec
from hub.runtime import Services
from tests.hub.audit.builders import fixed, sealer

pytestmark = pytest.mark.db

ROOT = Path(__file__).resolve().parents[3]
EVERY = 60


def gauges(registry: CollectorRegistry) -> dict[str, float]:
    return {
        name: registry.get_sample_value(name) or 0.0
        for name in (
            "hub_audit_checkpoint_last_timestamp_seconds",
            "hub_audit_checkpoint_interval_seconds",
            "hub_audit_checkpoint_stale",
        )
    }


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> ObservabilityMetrics:
    return ObservabilityMetrics(registry)


async def refresh(services: Services, metrics: ObservabilityMetrics, minutes: float = 0) -> bool:
    now = utcnow() + timedelta(minutes=minutes)
    return await refresh_checkpoint_gauges(services.db.pool, metrics, every_seconds=EVERY, now=now)


async def test_a_checkpoint_older_than_three_intervals_is_stale(
    services: Services, registry: CollectorRegistry, metrics: ObservabilityMetrics
) -> None:
    signed_at = utcnow() - timedelta(minutes=2)
    await sealer(services, clock=fixed(signed_at)).run(force_checkpoint=True)
    assert not await refresh(services, metrics)  # 2 minutes: within 3 x 60 s
    assert gauges(registry) == {
        "hub_audit_checkpoint_last_timestamp_seconds": signed_at.timestamp(),
        "hub_audit_checkpoint_interval_seconds": EVERY,
        "hub_audit_checkpoint_stale": 0,
    }
    assert await refresh(services, metrics, minutes=1.5)  # now 3.5 minutes old
    assert gauges(registry)["hub_audit_checkpoint_stale"] == 1
    await sealer(services).run(force_checkpoint=True)  # the sealer signs again
    assert not await refresh(services, metrics)
    assert gauges(registry)["hub_audit_checkpoint_stale"] == 0


async def test_entries_that_were_never_checkpointed_are_owed_since_the_oldest(
    services: Services, registry: CollectorRegistry, metrics: ObservabilityMetrics
) -> None:
    assert not await refresh(services, metrics, minutes=60)  # an empty log owes nothing
    written_at = utcnow() - timedelta(minutes=10)
    async with services.db.transaction() as conn:
        await append_entry(
            conn, AuditEntry(actor="t", action="x", target="y"), clock=fixed(written_at)
        )
    assert await refresh(services, metrics)
    assert gauges(registry)["hub_audit_checkpoint_last_timestamp_seconds"] == pytest.approx(
        written_at.timestamp()
    )


def test_the_alert_reads_the_gauges_the_hub_exports_and_has_a_runbook() -> None:
    spec = load_spec(ROOT / "deploy" / "slo.yaml")
    alert = next(a for a in spec.alerts if a.alert == "AuditCheckpointStale")
    exported = set(gauges(CollectorRegistry()))  # the names the hub exports
    named = {name for name in exported if name in alert.expr}
    assert named == exported - {"hub_audit_checkpoint_stale"}
    assert "3 * max(hub_audit_checkpoint_interval_seconds)" in alert.expr
    assert (ROOT / "runbooks" / "AuditCheckpointStale.md").is_file()


def witness_gauges(registry: CollectorRegistry) -> dict[str, float]:
    return {
        name: registry.get_sample_value(name) or 0.0
        for name in (
            "hub_audit_witness_owed_since_timestamp_seconds",
            "hub_audit_checkpoints_unwitnessed",
        )
    }


async def refresh_witness(
    services: Services, metrics: ObservabilityMetrics, witness: str, minutes: float = 0
) -> bool:
    now = utcnow() + timedelta(minutes=minutes)
    return await refresh_witness_gauges(
        services.db.pool, metrics, witness=witness, every_seconds=EVERY, now=now
    )


async def test_a_witness_that_misses_checkpoints_for_three_intervals_is_behind_until_it_catches_up(
    services: Services, registry: CollectorRegistry, metrics: ObservabilityMetrics, tmp_path: Path
) -> None:
    # A URL on loopback where nothing listens: every push fails, as a witness that is down.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        unreachable = f"http://127.0.0.1:{probe.getsockname()[1]}/checkpoints"
    signed_at = utcnow() - timedelta(minutes=2)
    for _ in range(2):
        report = await sealer(services, witness=unreachable, clock=fixed(signed_at)).run(
            force_checkpoint=True
        )
        assert report.witnessed == 0
    assert not await refresh_witness(services, metrics, unreachable)  # 2 minutes: within 3 x 60 s
    assert witness_gauges(registry) == {
        "hub_audit_witness_owed_since_timestamp_seconds": signed_at.timestamp(),
        "hub_audit_checkpoints_unwitnessed": 2,
    }
    assert await refresh_witness(services, metrics, unreachable, minutes=1.5)  # 3.5 minutes

    # The witness is back (here a file): the next run hands it both, and nothing is owed.
    witness = str(tmp_path / "witness.jsonl")
    report = await sealer(services, witness=witness).run()
    assert report.witnessed == 2
    assert len((tmp_path / "witness.jsonl").read_bytes().splitlines()) == 2
    now = utcnow()
    assert not await refresh_witness(services, metrics, witness, minutes=60)
    gauges_now = witness_gauges(registry)
    assert gauges_now["hub_audit_checkpoints_unwitnessed"] == 0
    assert gauges_now["hub_audit_witness_owed_since_timestamp_seconds"] >= now.timestamp()


async def test_without_a_witness_nothing_is_owed(
    services: Services, registry: CollectorRegistry, metrics: ObservabilityMetrics
) -> None:
    await sealer(services, clock=fixed(utcnow() - timedelta(hours=1))).run(force_checkpoint=True)
    before = utcnow()
    assert not await refresh_witness(services, metrics, "", minutes=60)
    assert witness_gauges(registry)["hub_audit_checkpoints_unwitnessed"] == 0
    owed_since = witness_gauges(registry)["hub_audit_witness_owed_since_timestamp_seconds"]
    assert owed_since >= before.timestamp()


def test_the_witness_alert_reads_the_gauge_the_hub_exports_and_has_a_runbook() -> None:
    spec = load_spec(ROOT / "deploy" / "slo.yaml")
    alert = next(a for a in spec.alerts if a.alert == "AuditWitnessBehind")
    assert "hub_audit_witness_owed_since_timestamp_seconds" in witness_gauges(CollectorRegistry())
    assert "time() - max(hub_audit_witness_owed_since_timestamp_seconds)" in alert.expr
    assert "3 * max(hub_audit_checkpoint_interval_seconds)" in alert.expr
    assert (ROOT / "runbooks" / "AuditWitnessBehind.md").is_file()


async def test_the_worker_job_refreshes_both_and_reports_them(services: Services) -> None:
    await sealer(services, clock=fixed(utcnow() - timedelta(hours=1))).run(force_checkpoint=True)
    summary = await refresh_gauges_job({"services": services})
    assert summary["audit_checkpoint_stale"] == 1  # an hour old, at the default 60 s interval
    assert summary["audit_witness_behind"] == 0  # no witness is configured in tests
