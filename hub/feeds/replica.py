"""Feed pages from a streaming replica (ADR 0016, "Feed pages on a replica").

Only the read of offered rows moves: covering new positions (judging and inserting offers),
release decisions and the access audit stay on the primary. The replica answers only from
one snapshot (one statement) in which the audience's offer range (lo, hi] already covers the
cursor: the range and its offers are committed together, so a snapshot that shows the
range shows every offer in it (and the entries and events they point at, committed before).
Reading the range on the primary and the offers on a replica could instead move a cursor
past offers the replica has not replayed yet, skipping them for good.
"""

from dataclasses import dataclass

import asyncpg

from hub.feeds import repository
from hub.feeds.kit import FeedKit
from hub.feeds.offers import AudienceSpec, Cover
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
    async with kit.db.reader() as conn:
        revision = kit.policy.revision or ""
        seen = await offered_in_snapshot(
            conn, spec, revision=revision, after=after, filters=filters, limit=limit
        )
    return seen if seen is not None and seen.rows else None


async def offered_in_snapshot(
    conn: asyncpg.Connection | asyncpg.Pool,
    spec: AudienceSpec,
    *,
    revision: str,
    after: int,
    filters: FeedFilters,
    limit: int,
    cover: Cover | None = None,
) -> ReplicaLook | None:
    """Offered rows after `after` through the audience's range end (or `cover`'s), read by
    one statement (one snapshot) only if that snapshot shows the audience (the same one as
    `cover`) covering them under `revision`; None otherwise. Range and offers commit
    together, so a snapshot that shows the range shows every offer in it."""
    through = cover.hi if cover is not None else repository.MAX_SEQ
    look = await repository.look_offered(
        conn, key=spec.key, revision=revision, after=after, through=through,
        filters=filters, limit=limit,
    )  # fmt: skip
    found = look.audience
    if found is None or found.revision != revision or (cover and found.id != cover.id):
        return None
    through = cover.hi if cover is not None else found.hi
    if not found.lo <= after < through <= found.hi:  # a range only grows in one revision
        return None
    return ReplicaLook(rows=look.rows, hi=through, last=look.last)
