"""Pages of the pull feeds (REST and SOAP): a reader's next released items, looked for among
the events its audience is offered (hub/feeds/offers.py), one release decision per distinct
verdict (hub/feeds/release.py), `limit` counted in released items, every page audited."""

import time
from dataclasses import dataclass

from hub.feeds import offers, repository
from hub.feeds.admission import Turn
from hub.feeds.kit import FeedKit
from hub.feeds.offers import AudienceSpec
from hub.feeds.release import ReleasedBatch, apply_verdicts, decide_groups, reader_hash_key
from hub.feeds.replica import ReplicaLook, offered_in_snapshot, offered_on_replica
from hub.feeds.repository import MAX_SEQ, FeedRow
from hub.feeds.rules import etag_matches, page_etag
from hub.feeds.schemas import Channel, FeedFilters, FeedItem, FeedPage
from hub.feeds.service import (
    MAX_LIMIT,
    MAX_WAIT_SECONDS,
    SETTLE_WAIT_SECONDS,
    Reader,
    audit_access,
    hydrate_rows_yielding,
    shown_items,
)
from hub.kit.errors import UnavailableError

# Offer fills one look may trigger, and refills of a page whose offered items policy
# withheld: bounded, so one request's cost is too (the page then says has_more).
MAX_FILLS = 4
MAX_ROUNDS = 4


@dataclass(frozen=True, slots=True)
class PageResult:
    """A page, or None when the caller's ETag still matches (304)."""

    page: FeedPage | None
    etag: str


async def read_page(
    kit: FeedKit,
    reader: Reader,
    *,
    cursor: str | None,
    filters: FeedFilters,
    limit: int,
    wait: float = 0.0,
    if_none_match: str | None = None,
    channel: Channel = "rest",
) -> PageResult:
    """The next page after `cursor`: up to `limit` released items, looked for among the
    events the reader's audience is offered. With `wait`, an empty or unchanged page waits
    (up to `wait` seconds) for new events instead of answering at once (long-poll).

    The page is admitted by the process's page gate (admission.py; the feed routers meter
    the whole request): over its budget this raises `FeedsBusyError` (503 with Retry-After)."""
    async with kit.gate.admitted(channel) as turn:
        return await _read_page(
            kit, reader, cursor=cursor, filters=filters, limit=limit, wait=wait,
            if_none_match=if_none_match, channel=channel, turn=turn,
        )  # fmt: skip


async def _read_page(
    kit: FeedKit,
    reader: Reader,
    *,
    cursor: str | None,
    filters: FeedFilters,
    limit: int,
    wait: float,
    if_none_match: str | None,
    channel: Channel,
    turn: Turn,
) -> PageResult:
    after = 0
    if cursor:
        kit.metrics.cursors.labels(version=str(kit.cursors.version_of(cursor))).inc()
        after = kit.cursors.decode(cursor, agency=reader.agency)
    limit = max(1, min(limit, MAX_LIMIT))
    deadline = time.monotonic() + max(0.0, min(wait, MAX_WAIT_SECONDS))
    spec = audience_of(reader)
    start, settle = after, True
    while True:
        mark = kit.bus.mark()
        taken = await take_offered(
            kit, spec, after=start, filters=filters, limit=limit, settle=settle
        )
        settle = False  # once per request: later looks follow notices of new positions
        etag = page_etag(
            key=kit.etag_key,
            agency_state=reader.state,
            after=after,
            limit=limit,
            filters=filters,
            seqs=[r.seq for r in taken.rows],
            revision=kit.policy.revision,
        )
        unchanged = etag_matches(if_none_match, etag)
        remaining = deadline - time.monotonic()
        if (taken.rows and not unchanged) or remaining <= 0:
            break
        if not taken.rows:  # nothing offered up to there: the next look starts after it
            start = taken.through
        async with turn.stepped_out():  # a long-poll holds no place while it waits
            await kit.bus.wait(mark, seconds=remaining)
    if unchanged:
        await audit_access(kit, reader, channel, "feeds.events.not_modified", seqs=[], withheld=[])
        return PageResult(page=None, etag=etag)
    look = _Look(spec=spec, filters=filters, limit=limit, after=after, start=start)
    page = await _release_page(kit, reader, taken, look=look, channel=channel)
    return PageResult(page=page, etag=etag)


def audience_of(reader: Reader) -> AudienceSpec:
    """The audience whose offers the reader pages over."""
    return AudienceSpec(
        agency=reader.agency,
        recipient=reader.recipient,
        purpose=reader.purpose,
        subscription=reader.subscription,
    )


@dataclass(frozen=True, slots=True)
class Taken:
    """Offered rows in order; every offered position up to `through` is among them, and
    `more` says offers (or unjudged positions) may lie beyond."""

    rows: list[FeedRow]
    through: int
    more: bool


async def take_offered(
    kit: FeedKit,
    spec: AudienceSpec,
    *,
    after: int,
    filters: FeedFilters,
    limit: int,
    settle: bool = False,
) -> Taken:
    """Up to `limit` offered rows after `after`, filling the audience's offers as needed
    (from a fresh replica when its offers already cover `after`: hub/feeds/replica.py).
    With `settle`, events this process accepted are sequenced first (ingest does not wait
    for them, ADR 0022)."""
    seen = await offered_on_replica(kit, spec, after=after, filters=filters, limit=limit + 1)
    if seen is not None:
        if len(seen.rows) > limit:
            return Taken(rows=seen.rows[:limit], through=seen.rows[limit - 1].seq, more=True)
        return Taken(rows=seen.rows, through=seen.hi, more=seen.hi < seen.last)
    seen = await _offered_as_covered(
        kit, spec, after=after, filters=filters, limit=limit, settle=settle
    )
    rows: list[FeedRow] = []
    position, extend = after, False
    if seen is not None:
        if len(seen.rows) > limit:
            return Taken(rows=seen.rows[:limit], through=seen.rows[limit - 1].seq, more=True)
        if seen.hi >= seen.last:
            return Taken(rows=seen.rows, through=max(after, seen.hi), more=False)
        rows, position, extend = seen.rows, seen.hi, True  # take more beyond the range
    for _ in range(MAX_FILLS):
        cover = await offers.cover(kit, spec, after=position, extend=extend)
        got = await offered_within(
            kit, spec, cover, after=position, filters=filters, limit=limit - len(rows) + 1
        )
        if got is None:  # the range was reset meanwhile: cover again, under what is now
            extend = False
            continue
        rows += got
        if len(rows) > limit:
            return Taken(rows=rows[:limit], through=rows[limit - 1].seq, more=True)
        position = max(position, cover.hi)
        if cover.hi >= cover.last:
            return Taken(rows=rows, through=position, more=False)
        extend = True
    return Taken(rows=rows, through=position, more=True)


async def _offered_as_covered(
    kit: FeedKit,
    spec: AudienceSpec,
    *,
    after: int,
    filters: FeedFilters,
    limit: int,
    settle: bool,
) -> ReplicaLook | None:
    """The usual page: the audience already covers `after` under the active revision, so
    one statement on the primary finds it and reads its offers. With `settle`, this
    process's sequencing runs under way finish first (bounded). None when the page must
    take the covering path: the range needs filling or the audience's use is due to
    be recorded."""
    if settle:
        await kit.notifier.settle(within=SETTLE_WAIT_SECONDS)
    revision = kit.policy.revision or ""
    look = await _look(kit, spec, revision=revision, after=after, filters=filters, limit=limit)
    found = look.audience
    if found is None or found.touch_due or found.revision != revision:
        return None
    if not found.lo <= after or (found.hi <= after and found.hi < look.last):
        return None
    return ReplicaLook(rows=look.rows, hi=max(after, found.hi), last=look.last)


async def _look(
    kit: FeedKit, spec: AudienceSpec, *, revision: str, after: int, filters: FeedFilters, limit: int
) -> repository.OfferedLook:
    return await repository.look_offered(
        kit.db.pool, key=spec.key, revision=revision, after=after, through=MAX_SEQ,
        filters=filters, limit=limit + 1,
    )  # fmt: skip


async def offered_within(
    kit: FeedKit,
    spec: AudienceSpec,
    cover: offers.Cover,
    *,
    after: int,
    filters: FeedFilters,
    limit: int,
) -> list[FeedRow] | None:
    """Offered rows in (after, cover.hi], read in one snapshot that still shows the audience
    covering them under the active revision; None when it does not (another reader reset
    it for a new bundle revision since `cover`, deleting its offers: reading them anyway
    would move the cursor past events never offered, and the agency would miss them)."""
    if cover.hi <= after:
        return []  # nothing is offered past the cursor yet
    seen = await offered_in_snapshot(
        kit.db.pool, spec, revision=kit.policy.revision or "", after=after, filters=filters,
        limit=limit, cover=cover,
    )  # fmt: skip
    return None if seen is None else seen.rows


@dataclass(frozen=True, slots=True)
class _Look:
    spec: AudienceSpec
    filters: FeedFilters
    limit: int
    after: int  # the cursor the reader gave
    start: int  # where the offered rows begin (past empty looks of a long-poll)


async def _release_page(
    kit: FeedKit, reader: Reader, taken: Taken, *, look: _Look, channel: Channel
) -> FeedPage:
    """Release offered rows until `limit` items are released (refilling when policy withheld
    some), the offers run out, or policy fails closed."""
    items: list[FeedItem] = []
    withheld: list[int] = []
    cursor = look.start
    stopped = False
    for _ in range(MAX_ROUNDS):
        batch = await release_rows(kit, reader, taken.rows, after=cursor)
        items += batch.items
        withheld += batch.withheld
        cursor, stopped = (batch.last, True) if batch.stopped else (taken.through, False)
        need = look.limit - len(items)
        if stopped or need <= 0 or not taken.more:
            break
        taken = await take_offered(kit, look.spec, after=cursor, filters=look.filters, limit=need)
    if stopped and cursor == look.start:
        raise UnavailableError("policy is unavailable; no event can be released now")
    await audit_access(
        kit,
        reader,
        channel,
        "feeds.events.read",
        seqs=[i.seq for i in items],
        withheld=withheld,
        decision_ids=[i.decision_id for i in items],
        cursor=(look.after, cursor),
    )
    return FeedPage(
        items=shown_items(kit, reader, items),
        next_cursor=kit.cursors.encode(cursor, agency=reader.agency),
        has_more=taken.more or stopped,
    )


async def release_rows(
    kit: FeedKit, reader: Reader, rows: list[FeedRow], *, after: int
) -> ReleasedBatch:
    """Release rows in order for the reader, one decision per distinct verdict, stopping at
    the first policy failure."""
    records = await hydrate_rows_yielding(kit, rows)
    verdicts = await decide_groups(
        kit.policy, recipient=reader.recipient, purpose=reader.purpose, rows=rows, records=records
    )
    return await apply_verdicts(
        rows,
        records,
        verdicts,
        hash_key=reader_hash_key(kit.hash_key, reader.recipient),
        after=after,
    )
