"""Structured logging (structlog): JSON lines in production, readable lines in development.

Every line inside a trace carries `trace_id` and `span_id` (OpenTelemetry's current span),
and stdlib loggers (uvicorn, arq, asyncpg, httpx) go through the same renderer.
"""

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from opentelemetry import trace

from hub.settings import Settings


def add_trace_ids(
    logger: Any, method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Add the current span's trace and span ids (hex, as in `traceparent`)."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event.setdefault("trace_id", format(context.trace_id, "032x"))
        event.setdefault("span_id", format(context.span_id, "016x"))
    return event


def configure_logging(settings: Settings) -> None:
    """Route stdlib and structlog output through one renderer at the configured level."""
    level = getattr(logging, settings.log_level.upper())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if settings.log_json
        else structlog.dev.ConsoleRenderer()
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    # Replace only handlers we installed before (re-configuration), never a test's capture.
    root.handlers = [h for h in root.handlers if not getattr(h, "_hub", False)]
    handler._hub = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs each request's full URL at INFO; agency URLs are configuration that may
    # carry a token in the query, so only its warnings reach the logs.
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
    # Piccolo says which PostgreSQL it found each time an engine starts: not news.
    logging.getLogger("piccolo").setLevel(max(level, logging.WARNING))
    # arq writes a line per job start and end; the worker logs a summary instead
    # (hub.observability.JobSummary). At debug level every job line is back.
    logging.getLogger("arq.worker").setLevel(level if level <= logging.DEBUG else logging.WARNING)
