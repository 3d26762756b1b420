"""Fixtures of observability tests: an in-memory span exporter installed once per session,
an operator token, and a receiver that records the headers it was sent."""

import base64
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar import Litestar, Request, post
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hub.identity.tokens import TokenEntry, append_token, new_token, token_hash
from hub.observability.tracing import instrument_clients, process_provider
from tests.support import ThreadedServer


@pytest.fixture(scope="package")
def span_exporter() -> Iterator[InMemorySpanExporter]:
    """Every finished span of this process while this package's tests run (OpenTelemetry
    lets a provider be set once, so the exporter is added to it, then shut down)."""
    exporter = InMemorySpanExporter()
    process_provider().add_span_processor(SimpleSpanProcessor(exporter))
    instrument_clients()
    yield exporter
    exporter.shutdown()  # later tests of the session export nothing
    # Instrumented clients would rewrite the `traceparent` later tests send and check.
    AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
    HTTPXClientInstrumentor().uninstrument()  # type: ignore[no-untyped-call]


@pytest.fixture
def spans(span_exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    """The exporter, emptied for this test."""
    span_exporter.clear()
    return span_exporter


@pytest.fixture
def operator_token(tmp_path: Path) -> tuple[Path, str]:
    """A static bearer token of an operator (tokens file, token)."""
    path = tmp_path / "tokens.toml"
    token = new_token()
    entry = {"sha256": token_hash(token), "subject": "olga", "roles": ["operator"]}
    append_token(path, msgspec.convert(entry, TokenEntry))
    return path, token


class HeaderRecorder:
    """A webhook receiver that answers 200 and keeps each request's headers and body."""

    def __init__(self) -> None:
        self.secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        self.received: list[tuple[dict[str, str], bytes]] = []

        @post("/hook", status_code=200)
        async def hook(request: Request[Any, Any, Any]) -> dict[str, str]:
            self.received.append((dict(request.headers), await request.body()))
            return {"status": "ok"}

        self.server = ThreadedServer(Litestar([hook]))

    def config(self) -> dict[str, Any]:
        """REST adapter configuration reaching this receiver."""
        return {"url": f"{self.server.url}/hook", "secrets": [self.secret], "timeout_seconds": 5}


@pytest.fixture
def recorder() -> Iterator[HeaderRecorder]:
    """A header-recording receiver on loopback."""
    found = HeaderRecorder()
    found.server.start()
    yield found
    found.server.stop()
