"""What a demo agency received, and failures it was told to fake."""

import threading
import time
from collections import deque
from typing import Any

import msgspec


class Received(msgspec.Struct, frozen=True, kw_only=True):
    """One message a receiver accepted (signature and schema already checked)."""

    kind: str
    delivery_id: str
    event_id: str | None
    record: dict[str, Any] | None
    at: float  # time.time() when the receiver acknowledged it
    test: bool = False
    # The request body exactly as it arrived, kept only by an inbox made with `keep_raw`.
    raw: bytes = b""


class InboxSummary(msgspec.Struct, frozen=True, kw_only=True):
    """The counts a test or an operator looks at first."""

    received: int
    unique: int
    duplicates: int
    rejected: int
    failures_pending: int


class Inbox:
    """Thread-safe record of acknowledged messages; counts repeats of a delivery id (a correct
    hub never makes a receiver acknowledge one id twice) and queues injected failures."""

    def __init__(self, *, max_items: int = 200_000, keep_raw: bool = False) -> None:
        self.keep_raw = keep_raw
        self._lock = threading.Lock()
        self._items: deque[Received] = deque(maxlen=max_items)
        self._counts: dict[str, int] = {}
        self._failures: deque[int] = deque()
        self.rejected = 0

    def accept(self, item: Received, *, raw: bytes = b"") -> bool:
        """Record an acknowledged message; False when its delivery id was seen before.
        `raw` (the body as received) is kept only when the inbox keeps raw bodies."""
        if self.keep_raw:
            item = msgspec.structs.replace(item, raw=raw)
        with self._lock:
            seen = self._counts.get(item.delivery_id, 0)
            self._counts[item.delivery_id] = seen + 1
            if seen == 0:
                self._items.append(item)
            return seen == 0

    def reject(self) -> None:
        """Count a message refused for a bad signature or schema."""
        with self._lock:
            self.rejected += 1

    def fail_next(self, count: int, status: int) -> None:
        """Answer the next `count` messages with HTTP `status` (or a SOAP fault) instead."""
        with self._lock:
            self._failures.extend([status] * count)

    def take_failure(self) -> int | None:
        """The status to fake for this request, if one is queued."""
        with self._lock:
            return self._failures.popleft() if self._failures else None

    def items(self) -> list[Received]:
        """Acknowledged messages, first delivery of each id only, oldest first."""
        with self._lock:
            return list(self._items)

    def count_of(self, delivery_id: str) -> int:
        """How many times this delivery id was acknowledged (1 when all is well)."""
        with self._lock:
            return self._counts.get(delivery_id, 0)

    def summary(self) -> InboxSummary:
        """Counts for `/_inbox`."""
        with self._lock:
            received = sum(self._counts.values())
            unique = len(self._counts)
            return InboxSummary(
                received=received,
                unique=unique,
                duplicates=received - unique,
                rejected=self.rejected,
                failures_pending=len(self._failures),
            )

    def clear(self) -> None:
        """Forget everything (between test cases)."""
        with self._lock:
            self._items.clear()
            self._counts.clear()
            self._failures.clear()
            self.rejected = 0


def now() -> float:
    """Acknowledgement time stamp (wall clock, comparable across processes on one machine)."""
    return time.time()
