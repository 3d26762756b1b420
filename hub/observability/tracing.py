"""OpenTelemetry traces: one trace from the edge request to the agency call.

The W3C `traceparent` crosses every hop: HTTP in (the API middleware), the arq job (stored
as a job argument), and HTTP out (the adapters send `Message.trace_context`). Exporting is
off by default: without `HUB_OTLP_ENDPOINT` spans are made (so logs carry trace and span ids
and agencies get a `traceparent`) but sent nowhere, and asyncpg/httpx are not instrumented.
"""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind

from hub.settings import Settings

TRACER_NAME = "hub"


@cache
def tracer() -> trace.Tracer:
    """The hub's tracer (a proxy until a provider is installed, so safe to call any time).

    Made once per process: a process has one provider for good (OpenTelemetry refuses a
    second), a proxy follows it once installed, and looking the tracer up took a fifth of a
    span's cost (three spans per delivery)."""
    return trace.get_tracer(TRACER_NAME)


def configure_tracing(settings: Settings, *, service: str) -> bool:
    """Install the SDK (once per process); export over OTLP/HTTP when an endpoint is
    configured. True if spans are exported."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider(
            resource=Resource.create(
                {"service.name": service, "deployment.environment": settings.environment}
            ),
            sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio)),
        )
        trace.set_tracer_provider(provider)
    if not settings.otlp_endpoint:
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint))
    )
    instrument_clients()
    return True


def process_provider() -> TracerProvider:
    """The process's SDK provider, installed if there is none yet (tests add exporters)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    return provider


def instrument_clients() -> None:
    """asyncpg queries and httpx requests as spans (idempotent)."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    instrumentors = (AsyncPGInstrumentor(), HTTPXClientInstrumentor())  # type: ignore[no-untyped-call]
    for instrumentor in instrumentors:
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()


def flush_tracing() -> None:
    """Export what is buffered (at process exit)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.force_flush(5_000)


def extract_context(headers: Mapping[str, str]) -> Context:
    """The trace context carried by `traceparent`/`tracestate` headers (lower-case keys)."""
    return propagate.extract(dict(headers))


def trace_context() -> dict[str, str]:
    """The current span as W3C headers (`traceparent`, maybe `tracestate`); empty if none."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def current_traceparent() -> str | None:
    """The current span's `traceparent`, or None outside any trace."""
    return trace_context().get("traceparent")


@contextmanager
def span(
    name: str,
    *,
    traceparent: str | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> Iterator[Span]:
    """A span that is current inside the block; a child of `traceparent` when given."""
    context = extract_context({"traceparent": traceparent}) if traceparent else None
    with tracer().start_as_current_span(
        name, context=context, kind=kind, attributes=dict(attributes or {})
    ) as current:
        yield current
