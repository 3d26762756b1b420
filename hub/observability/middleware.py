"""ASGI middleware of the API: a server span per request (continuing the caller's
`traceparent`), the latency histogram by route template and status, in-flight counting for
graceful shutdown, and `Connection: close` on the responses that end a keep-alive connection
(`ConnectionRecycler`).

Labels stay bounded: the route is Litestar's path template (`/v1/edge/media/{sha256:str}`),
never the raw path; method and status code come from small fixed sets.
"""

import time
from typing import Any

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from opentelemetry.trace import SpanKind, Status, StatusCode

from hub.observability.drain import ConnectionRecycler, Drain
from hub.observability.metrics import ObservabilityMetrics
from hub.observability.tracing import extract_context, tracer

log = structlog.get_logger(__name__)

# The header of a response after which uvicorn closes the connection (ADR 0031).
CLOSE = (b"connection", b"close")
# Probes and scrapes are counted but not traced: they would drown the traces that matter.
UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})


class ObservabilityMiddleware:
    """Wraps every HTTP route handler of the app."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: ObservabilityMetrics,
        drain: Drain,
        recycler: ConnectionRecycler | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.drain = drain
        self.recycler = recycler or ConnectionRecycler(limit=0, drain=drain)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Time, trace and count one request."""
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        route = scope.get("path_template") or "unmatched"
        method = str(scope.get("method", "GET"))
        status = 500
        client = scope.get("client")  # (host, port); a server may give a list, or None
        closes = self.recycler.closes((client[0], client[1]) if client else None)

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if closes:  # uvicorn closes the connection after a response that says so
                    message = {**message, "headers": [*message.get("headers", ()), CLOSE]}
                    self.metrics.http_connections_recycled.inc()
            await send(message)

        self.drain.enter()
        self.metrics.http_in_flight.inc()
        started = time.perf_counter()
        try:
            if route in UNTRACED:
                await self.app(scope, receive, send_and_note)
            else:
                await self._traced(scope, receive, send_and_note, route, method, lambda: status)
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.http_seconds.labels(route, method, str(status)).observe(elapsed)
            self.metrics.http_in_flight.dec()
            self.drain.leave()

    async def _traced(
        self, scope: Scope, receive: Receive, send: Send, route: str, method: str, status: Any
    ) -> None:
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1")
            for k, v in scope.get("headers", [])
            if k.lower() in (b"traceparent", b"tracestate")
        }
        with tracer().start_as_current_span(
            f"{method} {route}",
            context=extract_context(headers),
            kind=SpanKind.SERVER,
            attributes={"http.route": route, "http.request.method": method},
        ) as span:
            try:
                await self.app(scope, receive, send)
            finally:
                code = int(status())
                span.set_attribute("http.response.status_code", code)
                if code >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                # Inside the span, so the line carries trace_id and span_id.
                log.debug("request served", route=route, method=method, status=code)
