"""The bounded pool for heavy work: it runs off the loop, refuses past its bound, keeps a budget."""

import asyncio
import threading
import time

import pytest

from hub.kit.offload import OffloadBusyError, Offloader, OffloadTimeoutError


async def test_work_runs_in_a_pool_thread_and_returns_its_value() -> None:
    pool = Offloader("test", workers=1, queue=0, budget_seconds=5)
    name = await pool.run(lambda: threading.current_thread().name)
    assert name.startswith("hub-test")
    assert pool.in_flight == 0
    pool.close()


async def test_calls_past_workers_and_queue_are_refused_at_once() -> None:
    pool = Offloader("test", workers=1, queue=1, budget_seconds=5)
    release = threading.Event()
    running = [asyncio.ensure_future(pool.run(release.wait, 5)) for _ in range(2)]
    await asyncio.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(OffloadBusyError) as refused:
        await pool.run(release.wait, 5)
    assert time.monotonic() - started < 0.1
    assert refused.value.status == 503
    release.set()
    assert await asyncio.gather(*running) == [True, True]
    assert pool.in_flight == 0
    pool.close()


async def test_a_caller_past_its_budget_gets_503_and_the_slot_frees_when_the_thread_ends() -> None:
    pool = Offloader("test", workers=1, queue=0, budget_seconds=0.1)
    release = threading.Event()
    with pytest.raises(OffloadTimeoutError):
        await pool.run(release.wait, 5)
    assert pool.in_flight == 1  # the thread still runs: no second one may start beside it
    release.set()
    for _ in range(50):
        if pool.in_flight == 0:
            break
        await asyncio.sleep(0.01)
    assert pool.in_flight == 0
    assert await pool.run(lambda: 7) == 7
    pool.close()


async def test_the_loop_keeps_answering_while_the_pool_works() -> None:
    pool = Offloader("test", workers=1, queue=0, budget_seconds=5)
    work = asyncio.ensure_future(pool.run(time.sleep, 0.3))
    started = time.monotonic()
    await asyncio.sleep(0.01)
    assert time.monotonic() - started < 0.1
    await work
    pool.close()
