"""Dead letters and the ledger as operators read it: list, inspect, replay.

A replay is a new attempt on the same delivery id (so an idempotent agency still recognises
the message); it grants a fresh budget of attempts and is audited. The row is due at once and
its agency is woken at once.
"""

from datetime import datetime
from uuid import UUID

import asyncpg

from hub.audit import AuditEntry, append_entry
from hub.audit.schemas import Detail
from hub.delivery import repository
from hub.delivery.queue import DeliveryQueue
from hub.delivery.schemas import DeliveryDetail, DeliveryRead, ReplayRange, ReplayResult
from hub.kit.db import Database
from hub.kit.errors import ConflictError, NotFoundError, ValidationError

MAX_LIST = 1000


async def list_deliveries(
    db: Database,
    *,
    status: str | None = "dead",
    agency: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[DeliveryRead]:
    """Deliveries (dead letters by default), newest first; from a replica within the lag
    bound (ADR 0016): a listing for people and scripts, nothing is written from it."""
    async with db.snapshot() as conn:
        return await repository.list_deliveries(
            conn, status=status, agency=agency, since=since, until=until, limit=min(limit, MAX_LIST)
        )


async def inspect(db: Database, delivery_id: UUID) -> DeliveryDetail:
    """A delivery with every attempt (from a replica within the lag bound, one snapshot)."""
    async with db.snapshot() as conn:
        delivery = await repository.get_delivery(conn, delivery_id)
        if delivery is None:
            raise NotFoundError(f"no delivery {delivery_id}", code="delivery_not_found")
        attempts = await repository.attempts_of(conn, delivery_id)
    return DeliveryDetail(delivery=delivery, attempts=attempts)


async def replay_one(
    db: Database, queue: DeliveryQueue, delivery_id: UUID, *, actor: str, extra_attempts: int
) -> DeliveryRead:
    """Send a dead letter again (same delivery id)."""
    async with db.transaction() as conn:
        replayed = await repository.replay(
            conn,
            ids=[delivery_id],
            agency=None,
            since=None,
            until=None,
            extra_attempts=extra_attempts,
            limit=1,
        )
        if not replayed:
            current = await repository.get_delivery(conn, delivery_id)
            if current is None:
                raise NotFoundError(f"no delivery {delivery_id}", code="delivery_not_found")
            raise ConflictError(
                f"delivery {delivery_id} is {current.status}, not a dead letter",
                code="delivery_not_dead",
            )
        await _audit(conn, actor, replayed, target=f"delivery:{delivery_id}")
        delivery = await repository.get_delivery(conn, delivery_id)
    await queue.wake(agency_id for _, agency_id in replayed)
    assert delivery is not None  # noqa: S101 - updated in this transaction
    return delivery


async def replay_range(
    db: Database, queue: DeliveryQueue, request: ReplayRange, *, actor: str, extra_attempts: int
) -> ReplayResult:
    """Send again every dead letter that died in [since, until) (optionally one agency's)."""
    if request.until <= request.since:
        raise ValidationError("`until` must be after `since`", code="replay_range")
    async with db.transaction() as conn:
        replayed = await repository.replay(
            conn,
            ids=None,
            agency=request.agency,
            since=request.since,
            until=request.until,
            extra_attempts=extra_attempts,
            limit=request.limit,
        )
        target = f"agency:{request.agency}" if request.agency else "deliveries"
        await _audit(
            conn,
            actor,
            replayed,
            target=target,
            window=(request.since.isoformat(), request.until.isoformat()),
        )
    await queue.wake(agency_id for _, agency_id in replayed)
    return ReplayResult(replayed=len(replayed), ids=[d for d, _ in replayed])


async def _audit(
    conn: asyncpg.Connection,
    actor: str,
    replayed: list[tuple[UUID, UUID]],
    *,
    target: str,
    window: tuple[str, str] | None = None,
) -> None:
    detail: Detail = {"replayed": len(replayed)}
    if window is not None:
        detail["since"], detail["until"] = window
    await append_entry(
        conn,
        AuditEntry(actor=actor, action="delivery.replay", target=target, detail=detail),
    )
