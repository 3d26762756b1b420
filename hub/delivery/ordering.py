"""FIFO delivery for receivers that need order (ADR 0019): claim only the heads of an
agency's queue (or of each camera's), send each queue's rows one at a time in queue order,
and stop a queue at its first row that will be retried.

An agency's ordered claims take turns under an advisory lock, so two workers never hold rows
of one queue out of order: a claim takes a queue's rows only from its front, and rows another
worker holds (leased) or that wait for a retry stop it. A dead letter leaves the queue (its
rows behind go on); a withheld or cancelled row ends without sending and blocks nothing.
This module never sends anything itself: the dispatcher passes its own attempt in.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from hub.delivery import repository
from hub.delivery.repository import Claimed
from hub.delivery.schemas import Agency
from hub.kit.db import Database

# Sends of an ordered batch start within this share of the lease; each send is bounded at 0.6
# of it (dispatch), so every row is finished or handed back before its lease could expire and
# another worker take the queue's rows again.
SEND_WINDOW_OF_LEASE = 0.3


class _Outcome(Protocol):
    @property
    def status(self) -> str: ...


R = TypeVar("R", bound=_Outcome)


def is_ordered(agency: Agency) -> bool:
    """True when the agency's receiver needs its deliveries in order."""
    return agency.ordering != "none"


async def claim(db: Database, agency: Agency, *, limit: int, lease_seconds: float) -> list[Claimed]:
    """Number the agency's newly committed rows behind its queue, then claim up to `limit`
    heads, in queue order; one short transaction under the agency's order lock."""
    async with db.transaction() as conn:
        await repository.lock_agency_order(conn, agency.id)
        await repository.number_open(conn, agency.id)
        return await repository.claim_heads(
            conn,
            agency.id,
            per_camera=agency.ordering == "camera",
            limit=limit,
            lease_seconds=lease_seconds,
        )


async def next_due(db: Database, agency: Agency) -> float | None:
    """Seconds until one of the agency's queues can move (0: now); None when nothing is open."""
    async with db.connection() as conn:
        return await repository.next_head_due_in(
            conn, agency.id, per_camera=agency.ordering == "camera"
        )


def stops_queue(status: str) -> bool:
    """A row that will be tried again holds its place: nothing behind it may go first."""
    return status in ("retrying", "in_flight", "pending")


async def send_in_order(
    claimed: Sequence[Claimed],
    send: Callable[[Claimed], Awaitable[R]],
    *,
    window_seconds: float,
) -> tuple[list[tuple[Claimed, R]], list[Claimed]]:
    """Send each queue's rows one after another in queue order (queues side by side): the
    outcomes, and the rows left unsent because a row before them will be retried or the
    window closed (to hand back, unattempted, in their place)."""
    deadline = time.monotonic() + window_seconds
    queues: dict[str | None, list[Claimed]] = {}
    for row in sorted(claimed, key=lambda c: c.order_seq or 0):
        queues.setdefault(row.queue, []).append(row)

    async def one_queue(rows: list[Claimed]) -> tuple[list[tuple[Claimed, R]], list[Claimed]]:
        done: list[tuple[Claimed, R]] = []
        for index, row in enumerate(rows):
            if time.monotonic() >= deadline:
                return done, rows[index:]
            result = await send(row)
            done.append((row, result))
            if stops_queue(result.status):
                return done, rows[index + 1 :]
        return done, []

    ends = await asyncio.gather(*(one_queue(rows) for rows in queues.values()))
    return [pair for done, _ in ends for pair in done], [row for _, rest in ends for row in rest]
