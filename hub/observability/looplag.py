"""Event-loop lag: how late the loop wakes a task that asked to sleep a fixed interval.

Anything that blocks the loop (CPU work or a blocking call in a handler) delays every
request of the process by as much; this makes it visible as `hub_event_loop_lag_seconds`
(a histogram) and `hub_event_loop_lag_max_seconds` (the worst lag of the last window).
"""

import asyncio
import contextlib
import time

from prometheus_client import Gauge, Histogram


class LoopLagMonitor:
    """A task that sleeps `interval` seconds at a time and records how late it woke."""

    def __init__(
        self,
        *,
        histogram: Histogram,
        worst: Gauge,
        interval: float = 0.1,
        window_seconds: float = 10.0,
    ) -> None:
        self.histogram = histogram
        self.worst = worst
        self.interval = interval
        self.window_seconds = window_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin measuring on the running loop (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        """Stop measuring."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        worst, window_end = 0.0, time.monotonic() + self.window_seconds
        while True:
            lag = await self.measure_once()
            worst = max(worst, lag)
            if time.monotonic() >= window_end:
                self.worst.set(worst)
                worst, window_end = 0.0, time.monotonic() + self.window_seconds

    async def measure_once(self) -> float:
        """Sleep one interval; record and return how much later than asked the loop woke."""
        asked = time.monotonic()
        await asyncio.sleep(self.interval)
        lag = max(0.0, time.monotonic() - asked - self.interval)
        self.histogram.observe(lag)
        return lag
