"""Appending to and verifying the audit chain on real PostgreSQL, incl. tampering."""

import asyncio

import pytest

from hub.audit import AuditEntry, append_entry, verify_chain
from hub.audit.rules import entry_body, entry_hash
from hub.runtime import Services
from hub.settings import Settings
from tests.support import run_hub

pytestmark = pytest.mark.db


async def append_many(services: Services, n: int) -> None:
    for i in range(n):
        async with services.db.transaction() as conn:
            await append_entry(
                conn,
                AuditEntry(
                    actor="test",
                    action="thing.do",
                    target=f"t:{i}",
                    detail={"i": i, "tags": ["a", "b"]},
                ),
            )


async def test_an_untouched_chain_verifies(services: Services) -> None:
    await append_many(services, 5)
    report = await verify_chain(services.db.pool)
    assert (report.ok, report.entries, report.last_seq) == (True, 5, 5)


async def test_concurrent_appenders_keep_the_chain_gap_free(services: Services) -> None:
    await asyncio.gather(*(append_many(services, 5) for _ in range(6)))
    report = await verify_chain(services.db.pool)
    assert (report.ok, report.entries) == (True, 30)


async def audit_then_fail(services: Services) -> None:
    async with services.db.transaction() as conn:
        await append_entry(conn, AuditEntry(actor="test", action="x", target="t"))
        raise RuntimeError("the action failed after auditing")


async def test_a_rolled_back_append_leaves_no_trace(services: Services) -> None:
    await append_many(services, 2)
    with pytest.raises(RuntimeError):
        await audit_then_fail(services)
    await append_many(services, 1)
    report = await verify_chain(services.db.pool)
    assert (report.ok, report.entries) == (True, 3)


async def test_an_edited_row_is_named(services: Services) -> None:
    await append_many(services, 5)
    async with services.db.pool.acquire() as conn:
        await conn.execute("UPDATE audit_log SET target = 'forged' WHERE seq = 3")
    report = await verify_chain(services.db.pool)
    assert (report.ok, report.broken_at) == (False, 3)
    assert "altered" in (report.problem or "")


async def test_a_deleted_row_is_named(services: Services) -> None:
    await append_many(services, 5)
    async with services.db.pool.acquire() as conn:
        await conn.execute("DELETE FROM audit_log WHERE seq = 2")
    report = await verify_chain(services.db.pool)
    assert (report.ok, report.broken_at) == (False, 2)
    assert "missing" in (report.problem or "")


async def test_cli_verify_exits_non_zero_on_a_broken_chain(
    services: Services, settings: Settings
) -> None:
    await append_many(services, 3)
    env = {"HUB_DATABASE_URL": settings.database_url, "HUB_REDIS_URL": settings.redis_url}
    ok = await run_hub("audit", "verify", "--json", env=env)
    assert ok.returncode == 0, ok.stderr
    assert '"ok":true' in ok.stdout
    async with services.db.pool.acquire() as conn:
        await conn.execute("UPDATE audit_log SET detail = '{\"i\": 99}' WHERE seq = 2")
    broken = await run_hub("audit", "verify", env=env)
    assert broken.returncode == 1
    assert "BROKEN at entry 2" in broken.stdout


async def test_the_database_hashes_exactly_like_the_verifier(services: Services) -> None:
    async with services.db.transaction() as conn:
        seq = await append_entry(
            conn,
            AuditEntry(
                actor="a",
                action="b",
                target="c",
                detail={"k": ["x", "y"], "n": 3},
                decision_id="d-1",
                trace_id="t-1",
            ),
        )
    async with services.db.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT prev_hash, hash, at FROM audit_log WHERE seq = $1", seq)
    body = entry_body(
        at=row["at"],
        actor="a",
        action="b",
        target="c",
        detail={"k": ["x", "y"], "n": 3},
        decision_id="d-1",
        trace_id="t-1",
    )
    assert bytes(row["hash"]) == entry_hash(prev_hash=bytes(row["prev_hash"]), seq=seq, body=body)
