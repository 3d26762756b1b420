"""Observability: Prometheus metrics (multiprocess), OpenTelemetry traces carried from the
edge request through the arq job to the agency, SLO burn rates, and graceful drain.

It owns no table and decides nothing: it must never change what the hub does, only report
it (a failing exporter or sampler is logged and ignored).
"""

from hub.observability.job_summary import JobSummary
from hub.observability.kit import ObservabilityKit, prepare_process
from hub.observability.metrics import ObservabilityMetrics, default_metrics, record_retention_sweep
from hub.observability.tracing import current_traceparent, span, trace_context

__all__ = [
    "JobSummary",
    "ObservabilityKit",
    "ObservabilityMetrics",
    "current_traceparent",
    "default_metrics",
    "prepare_process",
    "record_retention_sweep",
    "span",
    "trace_context",
]
