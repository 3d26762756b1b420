"""The observability collaborators of one process (API or worker)."""

from dataclasses import dataclass, field
from pathlib import Path

from hub.observability.balance import open_board
from hub.observability.drain import Drain
from hub.observability.looplag import LoopLagMonitor
from hub.observability.metrics import ObservabilityMetrics, default_metrics
from hub.observability.multiproc import enable_multiprocess
from hub.observability.service import SloSampler
from hub.observability.slo import SloSpec, load_spec
from hub.observability.tracing import configure_tracing, flush_tracing
from hub.settings import Settings


def prepare_process(settings: Settings) -> None:
    """Before anything else of the hub is built (`hub api`, `hub worker`): choose the
    multiprocess metrics folder, so every collector made later writes there."""
    if settings.metrics_dir:
        enable_multiprocess(Path(settings.metrics_dir))


@dataclass
class ObservabilityKit:
    """Metrics, tracing, drain state and the SLO sampler of one process."""

    settings: Settings
    service: str
    metrics: ObservabilityMetrics = field(default_factory=default_metrics)
    drain: Drain = field(default_factory=Drain)
    _spec: SloSpec | None = None
    _sampler: SloSampler | None = None
    _loop_lag: LoopLagMonitor | None = None

    def start_process(self, *, decision_log_capacity: int) -> None:
        """Install tracing (when configured) and set the static gauges."""
        configure_tracing(self.settings, service=self.service)
        self.metrics.decision_log_capacity.set(decision_log_capacity)

    def spec(self) -> SloSpec:
        """The SLOs (read once)."""
        if self._spec is None:
            self._spec = load_spec(Path(self.settings.slo_file))
        return self._spec

    def sampler(self) -> SloSampler:
        """The burn-rate sampler over this host's counters."""
        if self._sampler is None:
            self._sampler = SloSampler(self.spec())
        return self._sampler

    async def start(self) -> None:
        """Start measuring loop lag and background SLO sampling (API only; sampling is a
        no-op if the SLO file is missing)."""
        if self._loop_lag is None:
            self._loop_lag = LoopLagMonitor(
                histogram=self.metrics.loop_lag, worst=self.metrics.loop_lag_max
            )
        self._loop_lag.start()
        if self._samples_locally():
            await self.sampler().start()
        # The host's other API workers see this one's load (ADR 0040; `hub api` made the board).
        if self.settings.api_workers > 1 and self.settings.api_load_board:
            self.drain.board = open_board(self.settings.api_load_board)

    def _samples_locally(self) -> bool:
        return not self.settings.prometheus_url and Path(self.settings.slo_file).is_file()

    async def stop(self) -> None:
        """Stop measuring and sampling, give the load board's slot back, and flush spans."""
        if self.drain.board is not None:
            board, self.drain.board = self.drain.board, None
            board.close()
        if self._loop_lag is not None:
            await self._loop_lag.stop()
        if self._sampler is not None:
            await self._sampler.stop()
        flush_tracing()
