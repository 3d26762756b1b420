"""Retry schedules per agency: the agency's own waits (the last repeating) instead of the
hub's doubling backoff, validated at registration; Retry-After honoured up to a cap."""

from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from hub.delivery.agencies import add_agency, get_agency
from hub.delivery.dispatch import Backoff
from hub.delivery.schemas import AgencyCreate
from hub.kit.errors import ValidationError
from hub.runtime import Services
from hub.settings import Settings
from tests.hub.delivery.harness import (
    Receivers,
    all_settled,
    ingest,
    quick,
    register,
    running_worker,
    wait_until,
)
from tests.hub.ingest.builders import event
from tests.support import EdgeNode


def test_a_schedule_is_followed_exactly_and_its_last_wait_repeats() -> None:
    backoff = Backoff(base_seconds=1, max_seconds=8)
    waits = [backoff.delay(n, schedule=[5, 60, 300]) for n in range(1, 6)]
    assert waits == [5, 60, 300, 300, 300]


def test_retry_after_wins_up_to_its_cap_over_backoff_and_schedule() -> None:
    capped = Backoff(base_seconds=1, max_seconds=8, retry_after_max_seconds=120)
    assert capped.delay(1, retry_after=90) == 90  # beyond max_seconds, within its own cap
    assert capped.delay(1, retry_after=7200) == 120
    assert capped.delay(2, retry_after=1, schedule=[5, 60]) == 60  # the longer wait wins
    assert capped.delay(1, retry_after=30, schedule=[5, 60]) == 30
    assert Backoff(base_seconds=1, max_seconds=8).delay(1, retry_after=3600) == 8


@pytest.mark.parametrize(
    "schedule", [[], [0], [-1, 5], [86_401], [1.0] * 21], ids=["empty", "zero", "neg", "day", "21"]
)
@pytest.mark.db
@pytest.mark.redis
@pytest.mark.commits
async def test_registration_refuses_a_schedule_out_of_bounds(
    services: Services, receivers: Receivers, schedule: list[float]
) -> None:
    create = AgencyCreate(
        name="police-north",
        kind="rest",
        config=receivers.config("rest"),
        retry_schedule=schedule,
    )
    with pytest.raises(ValidationError) as caught:
        await add_agency(services.db, services.delivery.adapters, create, actor="test")
    assert caught.value.code == "agency_retry_schedule"


async def attempts(settings: Settings) -> list[Any]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return list(
            await conn.fetch(
                """SELECT a.attempt, a.started_at, a.outcome, a.status_code,
                          d.next_attempt_at, d.updated_at
                   FROM delivery_attempt a JOIN delivery d ON d.id = a.delivery_id
                   ORDER BY a.attempt"""
            )
        )
    finally:
        await conn.close()


@pytest.mark.db
@pytest.mark.redis
@pytest.mark.commits
async def test_an_agency_schedule_spaces_its_retries(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: Receivers,
) -> None:
    await register(services, receivers, ("police-north",), retry_schedule=[0.6, 120])
    read, _ = await get_agency(services.db, "police-north")
    assert read.retry_schedule == [0.6, 120]
    receivers.inbox.fail_next(2, 500)
    await ingest(client, edge_node, [event(camera_id="demo-cam-1", model_name="demo-synthetic")])

    async with running_worker(quick(settings)):

        async def second_failed() -> bool:
            return len(await attempts(settings)) == 2

        await wait_until(second_failed, what="two failed attempts")

    first, second = await attempts(settings)
    assert [(a["outcome"], a["status_code"]) for a in (first, second)] == [("retry", 500)] * 2
    # The hub's own backoff here would wait 0.025-0.05 s; the agency asked for 0.6 s, then 120.
    assert (second["started_at"] - first["started_at"]).total_seconds() >= 0.6
    waits = (second["next_attempt_at"] - second["started_at"]).total_seconds()
    assert 119 <= waits <= 121


@pytest.mark.db
@pytest.mark.redis
@pytest.mark.commits
async def test_retry_after_is_honoured_over_the_schedule_up_to_the_cap(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: Receivers,
) -> None:
    await register(services, receivers, ("police-north",), retry_schedule=[0.05])
    receivers.inbox.fail_next(1, 503)  # the demo receiver answers Retry-After: 1
    await ingest(client, edge_node, [event(camera_id="demo-cam-1", model_name="demo-synthetic")])

    async with running_worker(quick(settings, delivery_retry_after_max_seconds=0.3)):
        await wait_until(lambda: all_settled(settings, 1), what="delivery settled")

    first, second = await attempts(settings)
    assert (first["outcome"], first["status_code"]) == ("retry", 503)
    assert second["outcome"] == "delivered"
    gap = (second["started_at"] - first["started_at"]).total_seconds()
    assert 0.3 <= gap < 1.0  # Retry-After (1 s) cut to the 0.3 s cap, over the 0.05 s schedule
