"""Legal holds: held events outlive retention, release takes a second officer, audited."""

import pytest

from hub.incidents.holds import HoldCreate, add_hold, list_holds, release_hold
from hub.ingest.partitions import partition_name
from hub.kit.errors import ConflictError, ValidationError
from hub.retention.sweep import run_sweep
from hub.runtime import Services
from tests.hub.retention.builders import (
    activate_default_policy,
    add_event,
    days_ago,
    event_ids,
    partition_events,
    sweep_deps,
)


@pytest.fixture(autouse=True)
def _policy(services: Services) -> None:
    activate_default_policy(services)


async def test_held_events_outlive_retention_and_go_after_release(services: Services) -> None:
    async with services.db.pool.acquire() as conn:
        by_id = await add_event(conn, captured_at=days_ago(45))
        by_track = await add_event(conn, captured_at=days_ago(45), track_id="v7")
        in_range = await add_event(conn, captured_at=days_ago(46), camera_id="demo-cam-3")
        free = await add_event(conn, captured_at=days_ago(45))
    holds = [
        await add_hold(services.db, HoldCreate(reason="case 1", event_ids=[by_id]), actor="ann"),
        await add_hold(services.db, HoldCreate(reason="case 2", track_id="v7"), actor="ann"),
        await add_hold(
            services.db,
            HoldCreate(
                reason="case 3", camera_id="demo-cam-3", from_at=days_ago(47), to_at=days_ago(44)
            ),
            actor="ann",
        ),
    ]
    assert [h.held_events for h in holds] == [1, 1, 1]

    await run_sweep(sweep_deps(services), dry_run=False)
    async with services.db.pool.acquire() as conn:
        assert await event_ids(conn) == {by_id, by_track, in_range}
    assert free

    for hold in holds:
        await release_hold(services.db, hold.id, actor="ann")
    await run_sweep(sweep_deps(services), dry_run=False)
    async with services.db.pool.acquire() as conn:
        assert await event_ids(conn) == {by_id, by_track, in_range}  # only asked, not released

    for hold in holds:
        released = await release_hold(services.db, hold.id, actor="bob")
        assert (released.status, released.released_by) == ("released", "bob")
    await run_sweep(sweep_deps(services), dry_run=False)
    async with services.db.pool.acquire() as conn:
        assert await event_ids(conn) == set()
        actions = [
            r["action"] for r in await conn.fetch("SELECT action FROM audit_log ORDER BY seq")
        ]
    assert actions.count("hold.add") == 3
    assert actions.count("hold.release_requested") == 3
    assert actions.count("hold.released") == 3


async def test_release_needs_a_second_officer(services: Services) -> None:
    hold = await add_hold(services.db, HoldCreate(reason="case", track_id="t9"), actor="user:ann")
    asked = await release_hold(services.db, hold.id, actor="user:ann")
    assert asked.status == "active"
    assert asked.release_requested_by == "user:ann"
    with pytest.raises(ConflictError) as same:
        await release_hold(services.db, hold.id, actor="user:ann")
    assert same.value.code == "hold_four_eyes"
    done = await release_hold(services.db, hold.id, actor="user:bob")
    assert done.status == "released"
    with pytest.raises(ConflictError):
        await release_hold(services.db, hold.id, actor="user:cy")
    assert [h.status for h in await list_holds(services.db)] == ["released"]


async def test_a_hold_blocks_dropping_its_partition(services: Services) -> None:
    old = days_ago(400)
    async with services.db.pool.acquire() as conn:
        held = await add_event(conn, captured_at=old)
        gone = await add_event(conn, captured_at=old)
        await partition_events(conn)
    hold = await add_hold(services.db, HoldCreate(reason="x", event_ids=[held]), actor="ann")
    report = await run_sweep(sweep_deps(services), dry_run=False)
    assert report.classes[0].partitions == []
    async with services.db.pool.acquire() as conn:
        left = await event_ids(conn)
    assert held in left
    assert gone not in left
    # Released: the month goes whole (and the shared test database keeps its partition count).
    await release_hold(services.db, hold.id, actor="ann")
    await release_hold(services.db, hold.id, actor="bob")
    report = await run_sweep(sweep_deps(services), dry_run=False)
    assert report.classes[0].partitions == [partition_name(old.date().replace(day=1))]


def test_a_hold_needs_exactly_one_scope() -> None:
    from hub.incidents.holds.service import _check_scope

    with pytest.raises(ValidationError):
        _check_scope(HoldCreate(reason="x"))
    with pytest.raises(ValidationError):
        _check_scope(HoldCreate(reason="x", camera_id="c"))
    _check_scope(HoldCreate(reason="x", track_id="t", camera_id="c"))
