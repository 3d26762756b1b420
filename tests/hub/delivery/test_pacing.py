"""Breaker, rate limiter and backoff on real Redis; the release cache key."""

import asyncio
from uuid import uuid4

import pytest

from hub.delivery.breaker import CircuitBreaker
from hub.delivery.dispatch import Backoff
from hub.delivery.limits import AgencyLimits
from hub.policy.release import release_cache_key
from hub.policy.schemas import Recipient
from hub.runtime import Services

pytestmark = pytest.mark.redis


async def test_breaker_opens_at_the_threshold_and_lets_one_probe_through(
    services: Services,
) -> None:
    breaker = CircuitBreaker(services.redis, threshold=3, open_seconds=0.3)
    agency = uuid4()
    assert (await breaker.permit(agency, probe_ttl=5)).allowed
    for _ in range(3):
        await breaker.record_failure(agency)
    denied = await breaker.permit(agency, probe_ttl=5)
    assert not denied.allowed
    assert 0 < denied.wait_seconds <= 0.3
    await asyncio.sleep(0.35)
    probe = await breaker.permit(agency, probe_ttl=5)
    other = await breaker.permit(agency, probe_ttl=5)
    assert (probe.allowed, probe.probe) == (True, True)
    assert not other.allowed  # one probe at a time
    await breaker.record_success(agency, probe)
    state = await breaker.state(agency, "a")
    assert (state.state, state.consecutive_failures, state.failing_since) == ("closed", 0, None)


async def test_failed_probe_opens_the_breaker_again(services: Services) -> None:
    breaker = CircuitBreaker(services.redis, threshold=1, open_seconds=0.2)
    agency = uuid4()
    _, since = await breaker.record_failure(agency)
    await asyncio.sleep(0.25)
    probe = await breaker.permit(agency, probe_ttl=5)
    assert probe.probe
    failures, since_again = await breaker.record_failure(agency)
    assert failures == 2
    assert since_again == since  # failing_since survives until a success
    assert (await breaker.state(agency, "a")).state == "open"


async def test_rate_limit_is_shared_and_paces_calls(services: Services) -> None:
    agency = uuid4()
    first, second = AgencyLimits(services.redis), AgencyLimits(services.redis)  # two processes
    waits = [await (first if i % 2 else second).rate_wait(agency, 10) for i in range(14)]
    granted = sum(1 for w in waits if w == 0)
    assert granted == 10  # a burst of one second's worth, then waiting
    assert all(0 < w <= 0.5 for w in waits if w)


async def test_fast_agencies_take_slots_in_chunks(services: Services) -> None:
    limits = AgencyLimits(services.redis)
    agency = uuid4()
    calls = 0
    original = limits._gcra

    async def counting(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        return await original(*args, **kwargs)  # type: ignore[arg-type]

    limits._gcra = counting  # type: ignore[assignment]
    for _ in range(100):
        assert await limits.rate_wait(agency, 2000) == 0
    assert calls == 1  # a chunk of 100 slots (50 ms at 2,000/s)


async def test_a_slow_agency_claims_what_its_batches_could_send(services: Services) -> None:
    limits = AgencyLimits(services.redis)
    agency = uuid4()
    assert limits.claim_cap(agency, 200) == 200
    # 200 claimed, 48 sent before the send window closed (5 s answers, 16 at a time): the
    # next batch claims 48 instead of handing 152 rows back again.
    limits.note_pace(agency, claimed=200, sent=48, late=True, floor=16, limit=200)
    assert limits.claim_cap(agency, 200) == 48
    # A capped batch that sent everything in time doubles the cap; a short batch (fewer
    # rows were due) says nothing; the cap lapses once it reaches the full claim.
    limits.note_pace(agency, claimed=48, sent=48, late=False, floor=16, limit=200)
    assert limits.claim_cap(agency, 200) == 96
    limits.note_pace(agency, claimed=20, sent=20, late=False, floor=16, limit=200)
    assert limits.claim_cap(agency, 200) == 96
    limits.note_pace(agency, claimed=96, sent=96, late=False, floor=16, limit=200)
    assert limits.claim_cap(agency, 200) == 192
    limits.note_pace(agency, claimed=192, sent=192, late=False, floor=16, limit=200)
    assert limits.claim_cap(agency, 200) == 200
    # Never below the agency's concurrency, and only the slow agency is capped.
    limits.note_pace(agency, claimed=200, sent=3, late=True, floor=16, limit=200)
    assert limits.claim_cap(agency, 200) == 16
    assert limits.claim_cap(agency, 10) == 10
    assert limits.claim_cap(uuid4(), 200) == 200


def test_backoff_doubles_with_jitter_caps_and_honours_retry_after() -> None:
    backoff = Backoff(base_seconds=1, max_seconds=8)
    assert 0.5 <= backoff.delay(1) <= 1
    assert 2 <= backoff.delay(3) <= 4
    assert 4 <= backoff.delay(10) <= 8
    assert backoff.delay(1, retry_after=5) == 5
    assert backoff.delay(1, retry_after=3600) == 8


def test_release_cache_key_covers_what_release_rules_may_read() -> None:
    recipient = Recipient(id="transit-authority", kind="agency", jurisdictions=["central"])
    record = {"camera_id": "c1", "detections": [{"label": "plate"}, {"label": "car"}]}
    key = release_cache_key(recipient, "traffic", "detection_event", record)
    same = {**record, "captured_at": "x", "detections": [{"label": "car"}, {"label": "plate"}]}
    assert release_cache_key(recipient, "traffic", "detection_event", same) == key
    for changed in (
        {**record, "camera_id": "c2"},
        {**record, "jurisdiction": "north"},
        {**record, "detections": [{"label": "face"}]},
    ):
        assert release_cache_key(recipient, "traffic", "detection_event", changed) != key
    other = Recipient(id="transit-authority", kind="agency", jurisdictions=["north"])
    assert release_cache_key(other, "traffic", "detection_event", record) != key
    assert release_cache_key(recipient, "statistics", "detection_event", record) != key
