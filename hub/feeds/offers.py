"""Audiences and their offers: what a reader may be offered, decided once per event.

An audience is everything the coarse release verdict and the agency's subscription depend
on: the recipient (as the reader's credential narrows it), purpose and subscription. Its
offers are the feed positions the subscription wants and whose coarse release verdict
(camera, jurisdiction, labels) allows, judged per distinct verdict, not per event, and filled
lazily over one contiguous range (lo, hi] by the reader that first needs a position outside
it, under the audience row's lock. A new bundle revision empties the range, which restarts
at the asking reader's cursor. Offers only narrow what a page looks at: every offered item
is still released (and may be withheld) by `release()`'s verdict when it is read.
"""

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import msgspec

from hub.delivery.schemas import Subscription
from hub.feeds import repository
from hub.feeds.kit import FeedKit
from hub.feeds.release import DATA_CLASS, RELEASE_ENTRYPOINT, coarse_record
from hub.feeds.repository import Audience, ReleaseKey
from hub.kit.db import Database
from hub.kit.errors import UnavailableError
from hub.policy.release import release_cache_key
from hub.policy.schemas import Recipient, ReleaseInput, ReleaseResult

# Feed entries judged per forward fill: a reader starting at position 0 of a long feed pays
# for this many at a time (a few milliseconds of PostgreSQL, and at most MAX_FILLS of them
# per page), not for the whole feed at once, so fills do not stall ingest's statements
# (ADR 0022). Counted in entries, not positions, so a gap (retention, a reset sequence)
# costs one look, not a page per empty chunk.
FILL_CHUNK = 2_000


@dataclass(frozen=True, slots=True)
class AudienceSpec:
    """Who reads: what the audience key is made of."""

    agency: str
    recipient: Recipient
    purpose: str
    subscription: Subscription

    @property
    def key(self) -> str:
        """A stable digest of the audience (its row's key)."""
        body = msgspec.json.encode([self.recipient, self.purpose, DATA_CLASS, self.subscription])
        return hashlib.sha256(body).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class AudiencePruneReport:
    """One pruning run: audiences deleted, offers deleted, and whether nothing stale is left
    (False: the run stopped at its bound)."""

    audiences: int
    offers: int
    done: bool


@dataclass(frozen=True, slots=True)
class Cover:
    """Offers cover (lo, hi] of audience `id`; `last` was the feed's head when looked at."""

    id: int
    lo: int
    hi: int
    last: int


async def cover(kit: FeedKit, spec: AudienceSpec, *, after: int, extend: bool) -> Cover:
    """The audience's offer range, made to start at or before `after` (and, with `extend`,
    to reach further toward the feed's head) under the active bundle revision."""
    covered = await _covered(kit, spec, after=after, extend=extend)
    if covered is not None:
        return covered
    async with kit.fill_lock(spec.key):
        # Another reader of this process may have filled it while this one waited.
        covered = await _covered(kit, spec, after=after, extend=extend)
        if covered is not None:
            return covered
        started = time.perf_counter_ns()
        try:
            return await _fill_range(kit, spec, after=after, extend=extend)
        finally:
            # A fill is mostly PostgreSQL's work (tens of ms for a chunk), which the gate's
            # meter of the event loop does not see: its wall time is charged too (its few
            # loop steps twice), so fills beside ingest count against the page budget.
            kit.gate.charge_database(time.perf_counter_ns() - started)


async def _covered(kit: FeedKit, spec: AudienceSpec, *, after: int, extend: bool) -> Cover | None:
    """The audience's range when it already covers `after` (and need not be extended)."""
    revision = kit.policy.revision or ""
    # A read outside any transaction: one round trip instead of BEGIN, two reads, COMMIT.
    found, last = await repository.find_audience(kit.db.pool, key=spec.key)
    if (
        found is not None
        and _covers(found, revision, after=after, last=last, extend=extend)
        # Recorded use (hourly) keeps the audience from pruning; a failed touch means it
        # changed since it was read, so the locked path decides again.
        and (not found.touch_due or await repository.touch_audience(kit.db.pool, found))
    ):
        return Cover(id=found.id, lo=found.lo, hi=found.hi, last=last)
    return None


async def _fill_range(kit: FeedKit, spec: AudienceSpec, *, after: int, extend: bool) -> Cover:
    """Under the audience row's lock: reset it for a new revision, and fill what `after`
    (and `extend`) need."""
    revision = kit.policy.revision or ""
    async with kit.db.transaction() as conn:
        # Offers are derived data that commit with their range: a crash that loses this
        # commit loses both, and the next reader fills them again. So the fill does not make
        # ingest's commits wait behind one more WAL flush (ADR 0022).
        await conn.execute("SET LOCAL synchronous_commit = off")
        audience = await repository.lock_audience(conn, key=spec.key, agency=spec.agency)
        last = await repository.last_seq(conn)
        if audience.revision != revision:
            audience = await repository.reset_audience(
                conn, audience_id=audience.id, revision=revision, at=min(after, last)
            )
        lo, hi = audience.lo, audience.hi
        if after < lo:
            await _fill(kit, conn, spec, audience, after=after, through=lo)
            lo = after
        if hi < last and (extend or hi <= after):
            through = await repository.chunk_end(
                conn, after=max(hi, after), entries=FILL_CHUNK, last=last
            )
            await _fill(kit, conn, spec, audience, after=hi, through=through)
            hi = through
        await repository.set_range(conn, audience_id=audience.id, lo=lo, hi=hi)
    return Cover(id=audience.id, lo=lo, hi=hi, last=last)


async def prune_audiences(
    db: Database, *, idle_before: datetime, batch: int = 5_000, max_offers: int = 50_000
) -> AudiencePruneReport:
    """Prune audiences no reader used since `idle_before` or whose agency is gone or
    disabled, stalest first, deleting at most about `max_offers` offers per run, `batch` per
    transaction. An audience too big for one batch is first retired (an empty range under no
    revision: a reader refills it instead of trusting what remains) and finished next time."""
    audiences = offers = 0
    while offers < max_offers:
        async with db.transaction() as conn:
            stale = await repository.lock_stale_audience(conn, idle_before=idle_before)
            if stale is None:
                break
            deleted = await repository.delete_offers(conn, audience_id=stale[0], limit=batch)
            if deleted < batch:
                await repository.delete_audience(conn, stale[0])
                audiences += 1
            else:
                await repository.retire_audience(conn, stale[0])
        offers += deleted
    return AudiencePruneReport(audiences=audiences, offers=offers, done=offers < max_offers)


def _covers(found: Audience, revision: str, *, after: int, last: int, extend: bool) -> bool:
    if found.revision != revision or after < found.lo:
        return False
    return found.hi >= last or not (extend or found.hi <= after)


async def _fill(
    kit: FeedKit,
    conn: asyncpg.Connection,
    spec: AudienceSpec,
    audience: Audience,
    *,
    after: int,
    through: int,
) -> None:
    """Judge positions (after, through] once per distinct coarse verdict; offer the allowed."""
    keys = await repository.release_keys(conn, after=after, through=through)
    allowed = [k.key for k in keys if await _allows(kit, spec, k)]
    await repository.insert_offers(
        conn,
        audience_id=audience.id,
        after=after,
        through=through,
        keys=allowed,
        subscription=spec.subscription,
    )


async def _allows(kit: FeedKit, spec: AudienceSpec, key: ReleaseKey) -> bool:
    """The coarse verdict for one release key (a logged decision, cached by key)."""
    record = coarse_record(
        camera_id=key.camera_id, jurisdiction=key.jurisdiction, labels=key.classes
    )
    result, decision = await kit.policy.decide(
        RELEASE_ENTRYPOINT,
        ReleaseInput(
            recipient=spec.recipient, purpose=spec.purpose, data_class=DATA_CLASS, record=record
        ),
        result_type=ReleaseResult,
        cache_key=release_cache_key(spec.recipient, spec.purpose, DATA_CLASS, record),
    )
    # Failed closed: nothing is offered on a guess; the fill (and the page) is refused, so
    # no cursor moves past positions that may be releasable once policy is back.
    if decision.error is not None:
        raise UnavailableError("policy is unavailable; no event can be released now")
    return result.allow
