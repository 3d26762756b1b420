"""A stopping worker ends even when one cancellation of its main task is swallowed."""

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

import hub.worker
from hub.worker import keep_cancelling


async def test_a_swallowed_cancellation_is_followed_by_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hub.worker, "RECANCEL_SECONDS", 0.05)
    swallowed = 0

    async def main() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed == 0:  # as a client's timeout code may: the first is lost
                    swallowed += 1
                    continue
                raise

    task = asyncio.create_task(main())
    await asyncio.sleep(0)
    worker: Any = SimpleNamespace(main_task=task, loop=asyncio.get_running_loop())
    task.cancel()  # arq's one cancellation on SIGTERM
    keep_cancelling(worker)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(task), timeout=2)
    assert swallowed == 1
    assert task.cancelled()
