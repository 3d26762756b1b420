"""Appending on real PostgreSQL: no lock between writers, rollbacks leave no trace, the
sealer integrates entries in the order it sees them commit."""

import asyncio
import time

import pytest

from hub.audit import AuditEntry, append_entries, append_entry, public_key_in, verify_log
from hub.audit.repository import find_entry
from hub.audit.rules import entry_leaf
from hub.audit.service import read_entry
from hub.runtime import Services
from tests.hub.audit.builders import append_many, sealer

pytestmark = pytest.mark.db


async def test_an_open_append_does_not_hold_up_another_writer(services: Services) -> None:
    """The old chain lock made the second writer wait for the first to commit."""
    async with services.db.pool.acquire() as slow, slow.transaction():
        await append_entry(slow, AuditEntry(actor="slow", action="x", target="t"))

        async def other() -> int:
            async with services.db.transaction() as conn:
                return await append_entry(conn, AuditEntry(actor="fast", action="x", target="t"))

        seq = await asyncio.wait_for(other(), timeout=2)
        async with services.db.pool.acquire() as conn:
            visible = await conn.fetchval("SELECT actor FROM audit_log WHERE seq = $1", seq)
        assert visible == "fast"


async def test_appends_held_open_overlap_instead_of_queueing(services: Services) -> None:
    """Five writers each keep their transaction open 0.5 s after appending: one lock would
    make that at least 2.5 s; without one it takes about 0.5 s."""

    async def slow_writer(n: int) -> None:
        async with services.db.pool.acquire() as conn, conn.transaction():
            await append_entry(conn, AuditEntry(actor="w", action="x", target=f"t:{n}"))
            await asyncio.sleep(0.5)

    started = time.monotonic()
    await asyncio.gather(*(slow_writer(n) for n in range(5)))
    assert time.monotonic() - started < 2.0


async def test_concurrent_writers_all_land_and_seal_into_one_tree(services: Services) -> None:
    await asyncio.gather(*(append_many(services, 5, tag=f"w{w}") for w in range(6)))
    report = await sealer(services).run(force_checkpoint=True)
    assert (report.sealed, report.tree_size) == (30, 30)
    verified = await verify_log(services.db.pool, key=public_key_in(services.settings.secrets_dir))
    assert (verified.ok, verified.entries, verified.checkpoint_size) == (True, 30, 30)


async def audit_then_fail(services: Services) -> None:
    async with services.db.transaction() as conn:
        await append_entry(conn, AuditEntry(actor="test", action="x", target="t"))
        raise RuntimeError("the action failed after auditing")


async def test_a_rolled_back_append_leaves_no_trace(services: Services) -> None:
    await append_many(services, 2)
    with pytest.raises(RuntimeError):
        await audit_then_fail(services)
    await append_many(services, 1)
    report = await sealer(services).run(force_checkpoint=True)
    assert report.tree_size == 3
    key = public_key_in(services.settings.secrets_dir)
    assert (await verify_log(services.db.pool, key=key)).ok


async def test_the_sealer_orders_by_commit_not_by_seq(services: Services) -> None:
    run = sealer(services)
    async with services.db.pool.acquire() as late, late.transaction():
        early_seq = await append_entry(late, AuditEntry(actor="late", action="x", target="t"))
        [later_seq] = await append_many(services, 1)
        assert later_seq > early_seq
        assert (await run.seal_pending()) == (1, False)  # only what has committed
    assert (await run.seal_pending()) == (1, False)
    first = await read_entry(services.db.pool, later_seq)
    second = await read_entry(services.db.pool, early_seq)
    assert (first.leaf_index, second.leaf_index) == (0, 1)


async def test_a_sealed_leaf_is_the_hash_of_the_entry_as_stored(services: Services) -> None:
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
    assert (await read_entry(services.db.pool, seq)).leaf_hash is None
    await sealer(services).seal_pending()
    stored = await find_entry(services.db.pool, seq)
    assert stored is not None
    assert stored.leaf_hash == entry_leaf(stored)


async def test_a_batch_append_keeps_each_entry_as_given_and_seals_like_single_ones(
    services: Services,
) -> None:
    entries = [
        AuditEntry(actor="live", action="feeds.live.send", target=f"agency:{n}",
                   detail={"seqs": [n, n + 1], "note": None, "ok": n % 2 == 0},
                   decision_id=None if n else "d-0", trace_id=f"t-{n}")
        for n in range(3)
    ]  # fmt: skip
    async with services.db.transaction() as conn:
        seqs = await append_entries(conn, entries)
        assert await append_entries(conn, []) == []
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 3
    await sealer(services).run(force_checkpoint=True)
    for seq, given in zip(seqs, entries, strict=True):
        stored = await find_entry(services.db.pool, seq)
        assert stored is not None
        got = (stored.actor, stored.target, stored.detail, stored.decision_id, stored.trace_id)
        assert got == (given.actor, given.target, given.detail, given.decision_id, given.trace_id)
        assert stored.leaf_hash == entry_leaf(stored)
    key = public_key_in(services.settings.secrets_dir)
    assert (await verify_log(services.db.pool, key=key)).ok


async def batch_then_fail(services: Services) -> None:
    async with services.db.transaction() as conn:
        await append_entries(conn, [AuditEntry(actor="a", action="b", target="c")] * 2)
        raise RuntimeError("the caller failed after auditing")


async def test_a_batch_append_rolls_back_with_its_caller(services: Services) -> None:
    before = await services.db.pool.fetchval("SELECT count(*) FROM audit_log")
    with pytest.raises(RuntimeError):
        await batch_then_fail(services)
    assert await services.db.pool.fetchval("SELECT count(*) FROM audit_log") == before
