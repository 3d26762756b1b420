"""The sweep on a real database: partition drops, batched deletes, media, dry run, audit."""

import uuid
from pathlib import Path
from typing import Any

import pytest

from hub.audit import public_key_in, verify_log
from hub.feeds.repository import sequence_pending
from hub.ingest.partitions import partition_name
from hub.retention.errors import SweepRunningError
from hub.retention.rules import month_of_partition
from hub.retention.sweep import SWEEP_LOCK_KEY, run_sweep
from hub.runtime import Services
from tests.hub.retention.builders import (
    activate_default_policy,
    add_event,
    add_media,
    days_ago,
    event_ids,
    partition_events,
    sweep_deps,
)

# Old enough for every class but the audit log, and a month no other test writes to.
OLD = days_ago(400)


@pytest.fixture(autouse=True)
def _policy(services: Services) -> None:
    activate_default_policy(services)


async def _partitions(services: Services) -> set[str]:
    async with services.db.pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = 'detection_event'::regclass"""
        )
    return {r["relname"] for r in rows}


async def test_an_expired_month_is_dropped_whole(services: Services) -> None:
    async with services.db.pool.acquire() as conn:
        old = [await add_event(conn, captured_at=OLD) for _ in range(3)]
        fresh = await add_event(conn, captured_at=days_ago(1))
        await partition_events(conn)
    name = partition_name(OLD.date().replace(day=1))
    assert name in await _partitions(services)

    report = await run_sweep(sweep_deps(services), dry_run=False)

    assert name not in await _partitions(services)
    events = report.classes[0]
    assert name in events.partitions
    assert events.rows >= 3
    async with services.db.pool.acquire() as conn:
        left = await event_ids(conn)
        audit = await conn.fetchrow(
            "SELECT detail, decision_id FROM audit_log WHERE action = 'retention.sweep'"
        )
    assert fresh in left
    assert not set(old) & left
    assert audit["decision_id"] in report.decision_ids
    key = public_key_in(services.settings.secrets_dir)
    assert (await verify_log(services.db.pool, key=key)).ok


async def test_a_partly_expired_month_is_deleted_in_batches(services: Services) -> None:
    # Central cameras keep events 30 days, north ones 90: one month holds both kinds.
    async with services.db.pool.acquire() as conn:
        expired = [await add_event(conn, captured_at=days_ago(45)) for _ in range(5)]
        kept = await add_event(conn, captured_at=days_ago(45), camera_id="demo-cam-1")
    report = await run_sweep(sweep_deps(services, batch_size=2), dry_run=False)
    async with services.db.pool.acquire() as conn:
        left = await event_ids(conn)
        counts = await conn.fetchval(
            "SELECT counts FROM retention_run WHERE id = $1::uuid", report.run_id
        )
    assert kept in left
    assert not set(expired) & left
    assert report.classes[0].rows == 5
    assert report.classes[0].partitions == []
    assert '"detection_event.rows": 5' in counts


async def test_dry_run_writes_nothing(services: Services) -> None:
    async with services.db.pool.acquire() as conn:
        for _ in range(4):
            await add_event(conn, captured_at=days_ago(45))
        before = await conn.fetchval(
            "SELECT (SELECT count(*) FROM detection_event) * 1000"
            " + (SELECT count(*) FROM audit_log) * 10 + (SELECT count(*) FROM retention_run)"
        )
    report = await run_sweep(sweep_deps(services), dry_run=True)
    async with services.db.pool.acquire() as conn:
        after = await conn.fetchval(
            "SELECT (SELECT count(*) FROM detection_event) * 1000"
            " + (SELECT count(*) FROM audit_log) * 10 + (SELECT count(*) FROM retention_run)"
        )
    assert report.dry_run
    assert report.run_id is None
    assert report.classes[0].rows == 4
    assert before == after


async def test_media_goes_only_when_no_event_needs_it(services: Services) -> None:
    root = Path(services.settings.media_dir)
    async with services.db.pool.acquire() as conn:
        shared = await add_media(conn, root, created_at=days_ago(20), content=b"\xff\xd8\xffA")
        alone = await add_media(conn, root, created_at=days_ago(20), content=b"\xff\xd8\xffB")
        # Central snapshots live 7 days: `alone` is only on an old event; `shared` also
        # on a fresh one, so its file must stay.
        await add_event(conn, captured_at=days_ago(20), media=(shared, alone))
        await add_event(conn, captured_at=days_ago(1), media=(shared,))
    report = await run_sweep(sweep_deps(services), dry_run=False)
    async with services.db.pool.acquire() as conn:
        rows = {r["sha256"] for r in await conn.fetch("SELECT sha256 FROM media_object")}
    assert rows == {shared}
    assert (root / shared[:2] / shared[2:4] / shared).exists()
    assert not (root / alone[:2] / alone[2:4] / alone).exists()
    assert report.classes[1].files == 1


async def test_two_sweeps_never_run_at_once(services: Services) -> None:
    async with services.db.pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", SWEEP_LOCK_KEY)
        try:
            with pytest.raises(SweepRunningError):
                await run_sweep(sweep_deps(services), dry_run=False)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", SWEEP_LOCK_KEY)


async def test_a_second_sweep_finds_nothing_more(services: Services) -> None:
    async with services.db.pool.acquire() as conn:
        for _ in range(3):
            await add_event(conn, captured_at=days_ago(45))
    first = await run_sweep(sweep_deps(services), dry_run=False)
    second = await run_sweep(sweep_deps(services), dry_run=False)
    assert first.classes[0].rows == 3
    assert second.classes[0].rows == 0


def test_partition_names_parse() -> None:
    assert month_of_partition("detection_event_y2026m02").month == 2  # type: ignore[union-attr]
    assert month_of_partition("detection_event_default") is None


async def _offer_everything(conn: Any) -> None:
    """Feed positions for every stored event, each offered to one audience."""
    await sequence_pending(conn)
    audience = await conn.fetchval(
        "INSERT INTO feed_audience (key, agency) VALUES ('retention-test', 'x') RETURNING id"
    )
    await conn.execute(
        "INSERT INTO feed_offer (audience_id, seq) SELECT $1, seq FROM feed_entry", audience
    )


async def _offered_events(conn: Any) -> set[uuid.UUID]:
    rows = await conn.fetch(
        """SELECT e.event_id FROM feed_offer o
           JOIN feed_entry f ON f.seq = o.seq
           JOIN detection_event e ON e.id = f.event_pk AND e.captured_at = f.captured_at"""
    )
    return {r["event_id"] for r in rows}


@pytest.mark.parametrize("days", [400, 45], ids=["partition dropped", "rows deleted"])
async def test_expired_events_take_their_feed_offers_with_them(
    services: Services, days: int
) -> None:
    async with services.db.pool.acquire() as conn:
        expired = [await add_event(conn, captured_at=days_ago(days)) for _ in range(3)]
        kept = await add_event(conn, captured_at=days_ago(1))
        if days > 90:
            await partition_events(conn)
        await _offer_everything(conn)
        assert await _offered_events(conn) == {*expired, kept}

    await run_sweep(sweep_deps(services), dry_run=False)

    async with services.db.pool.acquire() as conn:
        offers = await conn.fetchval("SELECT count(*) FROM feed_offer")
        assert await _offered_events(conn) == {kept}
    assert offers == 1  # none left behind naming a deleted position
