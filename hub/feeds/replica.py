"""Feed pages from a streaming replica (ADR 0016, "Feed pages on a replica").

Only the read of offered rows moves: covering new positions (judging and inserting offers),
release decisions and the access audit stay on the primary. The replica answers only from
one snapshot in which the audience's offer range (lo, hi] already covers the cursor: the
range and its offers are committed together, so a snapshot that shows the range shows every
offer in it (and the entries and events they point at, committed before). Reading the range
on the primary and the offers on a replica could instead move a cursor past offers the
replica has not replayed yet, skipping them for good.
"""

from dataclasses import dataclass

from hub.feeds import repository
from hub.feeds.kit import FeedKit
from hub.feeds.offers import AudienceSpec
from hub.feeds.repository import FeedRow
from hub.feeds.schemas import FeedFilters


@dataclass(frozen=True, slots=True)
class ReplicaLook:
    """Offered rows after the cursor, all within the replica's range (lo, hi]; `last` was
    the replica's feed head."""

    rows: list[FeedRow]
    hi: int
    last: int


async def offered_on_replica(
    kit: FeedKit, spec: AudienceSpec, *, after: int, filters: FeedFilters, limit: int
) -> ReplicaLook | None:
    """Up to `limit` offered rows after `after` as a fresh replica has them, or None when the
    primary must answer: no fresh replica, no range covering `after` under the active
    revision (it needs filling, which writes), or nothing offered there yet (a replica a
    moment behind must not hold back a long-poll that was just woken for new events)."""
    if not await kit.db.replica_fresh():
        return None
    revision = kit.policy.revision or ""
    async with kit.db.snapshot() as conn:
        found, last = await repository.find_audience(conn, key=spec.key)
        if found is None or found.revision != revision or not found.lo <= after < found.hi:
            return None
        rows = await repository.select_offered(
            conn,
            audience_id=found.id,
            after=after,
            through=found.hi,
            filters=filters,
            limit=limit,
        )
    return ReplicaLook(rows=rows, hi=found.hi, last=last) if rows else None
