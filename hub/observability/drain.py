"""Graceful shutdown of an API process: on SIGTERM `/readyz` answers 503 at once while the
process keeps serving for `HUB_SHUTDOWN_GRACE_SECONDS` (load balancers stop sending new
requests), then uvicorn's own shutdown stops accepting and finishes every in-flight request.

And which keep-alive connections an API process closes after a response: every one while it
drains, any that served `HUB_API_KEEPALIVE_REQUESTS`, and, where workers share the socket,
any that served `BUSY_MIN` while the worker serves another request, so the API worker
processes of a host share the work (ADR 0031). With the host's load board (`hub api
--workers N`, ADR 0040) a worker closes one only when another worker serves fewer requests by
enough that the move evens them out, after `BALANCED_MIN` requests."""

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import structlog

from hub.observability.balance import LoadBoard

log = structlog.get_logger(__name__)

Handler = Callable[[int, FrameType | None], Any] | int | None
# A connection is known by its peer's address and port (the ASGI scope's `client`).
Peer = tuple[str, int]
# Connections counted at most at once: past it the counts start over (a connection the client
# closed itself is never seen again, so its count would otherwise stay).
MAX_COUNTED_CONNECTIONS = 10_000
# Requests a connection serves at least before a busy worker closes it (workers sharing a
# socket): a handshake per ten requests of a busy client, at most.
BUSY_MIN = 10
# The same with the load board: a connection moves only when that evens the workers out, so
# on a balanced host none moves and on an uneven one there is no reason to wait longer.
BALANCED_MIN = 2


class Drain:
    """Readiness and in-flight requests of one API process."""

    def __init__(self, board: LoadBoard | None = None) -> None:
        self.draining = False
        self.in_flight = 0
        # Where the other API workers of the host see this one's in-flight count (ADR 0040).
        self.board = board
        self._previous: Handler = None
        self._installed = False

    def enter(self) -> None:
        """A request started."""
        self.in_flight += 1
        if self.board is not None:
            self.board.publish(self.in_flight)

    def leave(self) -> None:
        """A request finished."""
        self.in_flight -= 1
        if self.board is not None:
            self.board.publish(self.in_flight)

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


class ConnectionRecycler:
    """Decides, per request, whether its response closes the keep-alive connection.

    uvicorn's workers share one listening socket and asyncio accepts every pending connection
    at once, so the few busy connections of a burst (an edge gateway, a load balancer's pool)
    can all land on one worker while the others idle: measured with `bench/ingest.py`, one
    API process served all four clients at 74 % of a core while the host was 32 % idle.
    Closing a connection after `limit` requests makes its client reconnect, and the worker
    that accepts first is the one waiting in its event loop, the least busy; a client pays a
    TCP (and TLS) handshake per `limit` requests. `limit` 0 keeps connections open.

    When workers share the socket (`shared`), a worker that is serving another request as
    one arrives closes that connection sooner, after `BUSY_MIN` requests: connections leave
    the worker juggling several for one that waits. Limiting only by `limit`, three of the
    benchmark's four connections often stayed on one worker (57 % against 26 % of a core).

    With the drain's load board (ADR 0040) "busy" means busier than the least busy other
    worker by two requests, this one included, and by half: moving the connection there
    evens them out, and the few requests by which busy workers' counts swing move nothing.
    Without a board a balanced host still moved a connection every ten requests, and three of
    four stayed on one worker for a quarter to a half of the requests.
    """

    def __init__(self, *, limit: int, drain: Drain, shared: bool = False) -> None:
        self.limit = limit
        self.drain = drain
        self.shared = shared
        self._served: dict[Peer, int] = {}

    def closes(self, peer: Peer | None) -> bool:
        """Count a request on `peer`'s connection (call it before the request counts as in
        flight); whether its response closes it (always while draining: clients then move to
        processes that stay)."""
        if self.drain.draining:
            return True
        if not self.limit or peer is None:
            return False
        served = self._served.pop(peer, 0) + 1
        if served >= self.limit:
            return True
        if self.shared and self._moves(served):
            return True
        if len(self._served) >= MAX_COUNTED_CONNECTIONS:
            self._served.clear()
        self._served[peer] = served
        return False

    def _moves(self, served: int) -> bool:
        """Whether a connection that served `served` requests leaves this busy worker."""
        board = self.drain.board
        if board is None:
            return served >= BUSY_MIN and self.drain.in_flight > 0
        if served < BALANCED_MIN:
            return False
        least = board.least_other()
        if least is None:
            return False
        # This worker serves `in_flight` others and this request, the other `least`: one
        # request fewer here and one more there evens them out only if this is two ahead.
        # And by half as much again: with many connections per worker their counts swing
        # by a few requests from moment to moment, and chasing those swings closed a fifth
        # of 20 readers' connections (a handshake per five pages) where ten in a hundred did.
        mine = self.drain.in_flight + 1
        return mine - least >= 2 and 2 * mine >= 3 * (least + 1)
