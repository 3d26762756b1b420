"""Use cases of observability: SLO burn rates for the console, gauges refreshed from the
ledger, and the exposition text of `/metrics`.

Burn rates come from Prometheus when `HUB_PROMETHEUS_URL` is set (the recording rules of
`hub slo rules`, fleet-wide); otherwise from this host's own counters (every process writing
the multiprocess folder), sampled every 30 s and kept for 3 days in memory: windows longer
than the API process has been up are computed over its uptime and listed as partial.
"""

import asyncio
import time
from collections import deque
from collections.abc import Iterator

import httpx
import structlog
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

from hub.observability.multiproc import multiprocess_folder
from hub.observability.schemas import SloBurn, SloReport
from hub.observability.slo import (
    WINDOW_SECONDS,
    WINDOWS,
    SloSpec,
    Totals,
    burn_rate,
    recording_name,
    sli_totals,
)

log = structlog.get_logger(__name__)

SAMPLE_EVERY_SECONDS = 30.0


def current_samples() -> Iterator[tuple[str, dict[str, str], float]]:
    """Every sample of this host's processes (multiprocess) or of this process."""
    folder = multiprocess_folder()
    registry = REGISTRY
    if folder is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(folder))  # type: ignore[no-untyped-call]
    for family in registry.collect():
        for sample in family.samples:
            yield sample.name, dict(sample.labels), float(sample.value)


class SloSampler:
    """Readings of cumulative SLI totals over time, for burn rates without Prometheus."""

    def __init__(self, spec: SloSpec, *, keep_seconds: float = WINDOW_SECONDS["3d"]) -> None:
        self.spec = spec
        self.readings: deque[tuple[float, Totals]] = deque(
            maxlen=int(keep_seconds / SAMPLE_EVERY_SECONDS) + 2
        )
        self._task: asyncio.Task[None] | None = None

    def sample(self, now: float | None = None) -> None:
        """Take one reading now."""
        self.readings.append((now or time.time(), sli_totals(self.spec, current_samples())))

    def report(self, now: float | None = None) -> SloReport:
        """Burn rates per window from the readings held (plus one taken now)."""
        self.sample(now)
        at, latest = self.readings[-1]
        first_at = self.readings[0][0]
        slos: list[SloBurn] = []
        every = {(s.name, "") for s in self.spec.slos if s.sli.kind != "delivery_latency"}
        keys = sorted(set(latest) | every)
        for name, agency in keys:
            slo = next(s for s in self.spec.slos if s.name == name)
            rates: dict[str, float | None] = {}
            partial: list[str] = []
            for window in WINDOWS:
                start = at - WINDOW_SECONDS[window]
                if first_at > start:
                    partial.append(window)
                then = self._reading_at(start, (name, agency))
                now_totals = latest.get((name, agency), (0.0, 0.0))
                rate = burn_rate(slo, now_totals, then)
                rates[window] = None if rate is None else round(rate, 4)
            slos.append(
                SloBurn(
                    slo=name,
                    agency=agency or None,
                    objective=slo.objective,
                    burn_rates=rates,
                    partial_windows=partial,
                )
            )
        return SloReport(source="process", sampled_seconds=round(at - first_at, 1), slos=slos)

    def _reading_at(self, start: float, key: tuple[str, str]) -> tuple[float, float] | None:
        """The reading closest to (at or after) `start`; None means "since the first"."""
        for at, totals in self.readings:
            if at >= start:
                return totals.get(key) if at > self.readings[0][0] else None
        return None

    async def start(self) -> None:
        """Sample in the background until `stop`."""
        self.sample()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop sampling."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_EVERY_SECONDS)
            try:
                self.sample()
            except Exception:  # a bad reading must not stop the sampler
                log.exception("SLO sample failed")


async def prometheus_report(spec: SloSpec, url: str) -> SloReport:
    """Burn rates from Prometheus's recording rules (`hub slo rules`)."""
    slos: dict[tuple[str, str], dict[str, float | None]] = {}
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        for window in WINDOWS:
            response = await http.get("/api/v1/query", params={"query": recording_name(window)})
            response.raise_for_status()
            for item in response.json()["data"]["result"]:
                labels = item["metric"]
                key = (labels.get("slo", ""), labels.get("agency", ""))
                slos.setdefault(key, {})[window] = float(item["value"][1])
    burns: list[SloBurn] = []
    for (name, agency), ratios in sorted(slos.items()):
        slo = next((s for s in spec.slos if s.name == name), None)
        if slo is None:
            continue
        rates: dict[str, float | None] = {
            w: (None if ratios.get(w) is None else round(float(ratios[w] or 0) / slo.budget, 4))
            for w in WINDOWS
        }
        burns.append(
            SloBurn(slo=name, agency=agency or None, objective=slo.objective, burn_rates=rates)
        )
    return SloReport(source="prometheus", sampled_seconds=0.0, slos=burns)
