"""`GET /metrics` (Prometheus exposition, every process of this host) and `GET /v1/ops/slo`
(current SLO burn rates for the console). Both need an operator or admin (policy data)."""

from litestar import Response, Router, get

from hub.observability.kit import ObservabilityKit
from hub.observability.multiproc import render_latest
from hub.observability.schemas import SloReport
from hub.observability.service import prometheus_report


def build_router(kit: ObservabilityKit) -> list[Router]:
    """The routers of this domain, bound to the process's kit."""

    @get("/metrics", sync_to_thread=False, include_in_schema=False)
    def metrics() -> Response[bytes]:
        """Prometheus text exposition."""
        body, content_type = render_latest()
        return Response(body, media_type=content_type)

    @get("/slo", summary="Current SLO burn rates per window (1 = budget spent exactly on time)")
    async def slo() -> SloReport:
        """Burn rates from Prometheus when configured, else from this host's counters."""
        if kit.settings.prometheus_url:
            return await prometheus_report(kit.spec(), kit.settings.prometheus_url)
        return kit.sampler().report()

    return [
        Router(path="/", route_handlers=[metrics], tags=["ops"]),
        Router(path="/v1/ops", route_handlers=[slo], tags=["ops"]),
    ]
