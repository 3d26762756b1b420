"""Graceful shutdown of an API process: on SIGTERM `/readyz` answers 503 at once while the
process keeps serving for `HUB_SHUTDOWN_GRACE_SECONDS` (load balancers stop sending new
requests), then uvicorn's own shutdown stops accepting and finishes every in-flight request."""

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import structlog

log = structlog.get_logger(__name__)

Handler = Callable[[int, FrameType | None], Any] | int | None


class Drain:
    """Readiness and in-flight requests of one API process."""

    def __init__(self) -> None:
        self.draining = False
        self.in_flight = 0
        self._previous: Handler = None
        self._installed = False

    def enter(self) -> None:
        """A request started."""
        self.in_flight += 1

    def leave(self) -> None:
        """A request finished."""
        self.in_flight -= 1

    def begin(self) -> None:
        """Stop being ready (idempotent)."""
        if not self.draining:
            self.draining = True
            log.info("shutdown requested: not ready, draining", in_flight=self.in_flight)

    def install(self, *, grace_seconds: float) -> None:
        """Intercept SIGTERM in this (main-thread) event loop; a no-op elsewhere (tests)."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        previous = signal.getsignal(signal.SIGTERM)

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            self.begin()
            # After the grace period hand the signal to the server's own handler (uvicorn
            # then stops accepting and waits for in-flight requests).
            loop.call_soon_threadsafe(loop.call_later, grace_seconds, _forward, signum, frame)

        def _forward(signum: int, frame: FrameType | None) -> None:
            if callable(previous):
                previous(signum, frame)
                return
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
            signal.raise_signal(signum)

        self._previous = previous
        signal.signal(signal.SIGTERM, on_sigterm)
        self._installed = True

    def uninstall(self) -> None:
        """Give SIGTERM back to whoever had it."""
        if self._installed and threading.current_thread() is threading.main_thread():
            signal.signal(
                signal.SIGTERM, self._previous if self._previous is not None else signal.SIG_DFL
            )
            self._installed = False
