"""Heavy work off the event loop, bounded: a few threads, a short queue and a time budget.

CPU-heavy steps on untrusted input (XML schema validation, image headers, archive checks,
argon2) must not run on the event loop, where one request would stall every other client;
nor in an unbounded pool, where a burst of them would take every core and all the memory.
An `Offloader` owns a small thread pool. A call beyond `workers + queue` in flight is refused
at once (`OffloadBusyError`, 503), and a caller that waited longer than the budget gets
`OffloadTimeoutError` (503) while its thread finishes and frees its slot.
"""

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from hub.kit.errors import UnavailableError

P = ParamSpec("P")
R = TypeVar("R")


class OffloadBusyError(UnavailableError):
    """Every worker and queue slot of a pool is taken."""

    code = "busy"
    title = "Busy"


class OffloadTimeoutError(UnavailableError):
    """The work did not finish within its time budget."""

    code = "work_timeout"
    title = "Work took too long"


class Offloader:
    """A bounded thread pool for one kind of heavy work (one per kind, built at start-up)."""

    def __init__(self, name: str, *, workers: int, queue: int, budget_seconds: float) -> None:
        self.name = name
        self.budget_seconds = budget_seconds
        self._limit = workers + queue
        self._in_flight = 0  # touched only from event-loop threads' done callbacks and run()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"hub-{name}")

    @property
    def in_flight(self) -> int:
        """Calls running or queued now."""
        return self._in_flight

    async def run(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """`fn(*args, **kwargs)` in the pool; 503 when the pool is full or the budget runs out."""
        if self._in_flight >= self._limit:
            raise OffloadBusyError(
                f"too many {self.name} requests at once; retry shortly", retry_after=1
            )
        self._in_flight += 1
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))
        future.add_done_callback(self._release)
        try:
            # shield: a timed-out caller leaves; the thread still owns its slot until it ends.
            return await asyncio.wait_for(asyncio.shield(future), self.budget_seconds)
        except TimeoutError:
            raise OffloadTimeoutError(
                f"{self.name} took longer than {self.budget_seconds:g} s"
            ) from None

    def _release(self, _: "asyncio.Future[R]") -> None:
        self._in_flight -= 1

    def close(self) -> None:
        """Stop taking work; running calls finish."""
        self._pool.shutdown(wait=False, cancel_futures=True)
