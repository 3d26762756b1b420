"""Event-loop lag is measured: a blocked loop shows up in the histogram and the window max."""

import asyncio
import time

from prometheus_client import CollectorRegistry

from hub.observability.looplag import LoopLagMonitor
from hub.observability.metrics import ObservabilityMetrics


def _monitor(registry: CollectorRegistry, **kwargs: float) -> LoopLagMonitor:
    metrics = ObservabilityMetrics(registry)
    return LoopLagMonitor(histogram=metrics.loop_lag, worst=metrics.loop_lag_max, **kwargs)


async def test_a_blocked_loop_is_measured_as_lag() -> None:
    registry = CollectorRegistry()
    monitor = _monitor(registry, interval=0.02)
    measuring = asyncio.ensure_future(monitor.measure_once())
    await asyncio.sleep(0)  # the measurement starts its sleep
    time.sleep(0.3)  # noqa: ASYNC251 - blocking the loop is the point
    lag = await measuring
    assert 0.25 < lag < 1.0
    assert registry.get_sample_value("hub_event_loop_lag_seconds_bucket", {"le": "0.25"}) == 0
    assert registry.get_sample_value("hub_event_loop_lag_seconds_count") == 1


async def test_an_idle_loop_has_little_lag_and_the_window_max_is_published() -> None:
    registry = CollectorRegistry()
    monitor = _monitor(registry, interval=0.01, window_seconds=0.1)
    monitor.start()
    await asyncio.sleep(0.3)
    await monitor.stop()
    count = registry.get_sample_value("hub_event_loop_lag_seconds_count")
    assert count is not None
    assert count >= 5
    worst = registry.get_sample_value("hub_event_loop_lag_max_seconds")
    assert worst is not None
    assert worst < 0.1
