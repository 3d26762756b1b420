"""Use cases of feeds: who reads, a page of released events, media, acknowledgements.

Every item leaves through `release()` for the reader's agency; a denied item is left out,
an item policy could not decide (it failed closed) ends the page there, so the cursor never
moves past an event that may be releasable once policy is back. Every access is audited,
one entry per page (ids and decision ids, never payloads).
"""

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import msgspec

from hub.audit import AuditEntry, append_entry
from hub.delivery.schemas import Subscription
from hub.feeds import offers, repository
from hub.feeds.errors import MediaNotFoundError, NotAnAgencyError
from hub.feeds.kit import FeedKit
from hub.feeds.offers import AudienceSpec
from hub.feeds.release import ReleasedBatch, apply_verdicts, decide_groups, reader_hash_key
from hub.feeds.repository import FeedRow
from hub.feeds.rules import decode_cursor, encode_cursor, etag_matches, page_etag, recipient_for
from hub.feeds.schemas import AckResult, Channel, FeedFilters, FeedItem, FeedNotice, FeedPage
from hub.identity.schemas import Subject
from hub.kit.errors import UnavailableError
from hub.media import load_image, read_stored
from hub.policy.release import Released, release, release_media, withheld_for_now
from hub.policy.schemas import Recipient
from hub.retention import hydrate, keys_for

MAX_LIMIT = 500
# Offer fills one look may trigger, and refills of a page whose offered items policy
# withheld: bounded, so one request's cost is too (the page then says has_more).
MAX_FILLS = 4
MAX_ROUNDS = 4
MAX_WAIT_SECONDS = 30.0
# Pending events older than this are sequenced by readers' processes too (crash recovery).
SWEEP_GRACE_SECONDS = 2.0
# Distinct release inputs (camera, jurisdiction, labels) decided per image request; an image
# referenced by more is withheld rather than released on a partial view.
MEDIA_CANDIDATES = 50


class Reader(msgspec.Struct, frozen=True, kw_only=True):
    """A subject reading for its agency: the release recipient and purpose it gets."""

    actor: str
    agency: str
    recipient: Recipient
    purpose: str
    authz_decision_id: str | None = None
    subscription: Subscription = msgspec.field(default_factory=Subscription)

    @property
    def state(self) -> bytes:
        """What release depends on besides the record (part of the ETag)."""
        return msgspec.json.encode([self.recipient, self.purpose])


@dataclass(frozen=True, slots=True)
class PageResult:
    """A page, or None when the caller's ETag still matches (304)."""

    page: FeedPage | None
    etag: str


async def resolve_reader(kit: FeedKit, subject: Subject, *, decision_id: str | None) -> Reader:
    """The reader for an authenticated subject; 403 unless it acts for an enabled agency."""
    agency = await kit.agencies.get(subject.agency) if subject.agency else None
    if agency is None or agency.status == "disabled":
        raise NotAnAgencyError("the subject acts for no registered, enabled agency")
    return Reader(
        actor=f"{subject.kind}:{subject.id}",
        agency=agency.name,
        recipient=recipient_for(
            subject,
            agency=agency.name,
            jurisdictions=agency.jurisdictions,
            clearance=agency.clearance,
        ),
        purpose=subject.purpose or agency.purpose,
        authz_decision_id=decision_id or None,
        subscription=await kit.agencies.subscription(agency.name),
    )


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
    (up to `wait` seconds) for new events instead of answering at once (long-poll)."""
    after = decode_cursor(cursor, agency=reader.agency, key=kit.cursor_key) if cursor else 0
    limit = max(1, min(limit, MAX_LIMIT))
    deadline = time.monotonic() + max(0.0, min(wait, MAX_WAIT_SECONDS))
    spec = audience_of(reader)
    start = after
    while True:
        mark = kit.bus.mark()
        taken = await take_offered(kit, spec, after=start, filters=filters, limit=limit)
        etag = page_etag(
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
        await kit.bus.wait(mark, seconds=remaining)
    if unchanged:
        await _audit(kit, reader, channel, "feeds.events.not_modified", seqs=[], withheld=[])
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
    kit: FeedKit, spec: AudienceSpec, *, after: int, filters: FeedFilters, limit: int
) -> Taken:
    """Up to `limit` offered rows after `after`, filling the audience's offers as needed."""
    rows: list[FeedRow] = []
    position, extend = after, False
    for _ in range(MAX_FILLS):
        cover = await offers.cover(kit, spec, after=position, extend=extend)
        rows += await repository.select_offered(
            kit.db.pool,
            audience_id=cover.id,
            after=position,
            through=cover.hi,
            filters=filters,
            limit=limit - len(rows) + 1,
        )
        if len(rows) > limit:
            return Taken(rows=rows[:limit], through=rows[limit - 1].seq, more=True)
        position = max(position, cover.hi)
        if cover.hi >= cover.last:
            return Taken(rows=rows, through=position, more=False)
        extend = True
    return Taken(rows=rows, through=position, more=True)


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
    await _audit(
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
        items=items,
        next_cursor=encode_cursor(cursor, agency=reader.agency, key=kit.cursor_key),
        has_more=taken.more or stopped,
    )


async def release_rows(
    kit: FeedKit, reader: Reader, rows: list[FeedRow], *, after: int
) -> ReleasedBatch:
    """Release rows in order for the reader, one decision per distinct verdict, stopping at
    the first policy failure."""
    records = await hydrate_payloads(kit, [row.payload for row in rows])
    verdicts = await decide_groups(
        kit.policy, recipient=reader.recipient, purpose=reader.purpose, rows=rows, records=records
    )
    return apply_verdicts(
        rows,
        records,
        verdicts,
        hash_key=reader_hash_key(kit.hash_key, reader.recipient),
        after=after,
    )


async def hydrate_payloads(kit: FeedKit, payloads: list[str]) -> list[dict[str, Any]]:
    """Stored payloads as records, their PII back from the vault (one query for them all)."""
    records: list[dict[str, Any]] = [msgspec.json.decode(p) for p in payloads]
    return await hydrate(kit.db.pool, lambda: keys_for(kit.settings), records)


async def release_payload(
    kit: FeedKit, reader: Reader, payload: str | dict[str, Any], *, data_class: str
) -> Released:
    """Release a stored payload (re-hydrated here) or a record `hydrate_payloads` made."""
    if isinstance(payload, str):
        (record,) = await hydrate_payloads(kit, [payload])
    else:
        record = payload
    return await release(
        kit.policy,
        recipient=reader.recipient,
        purpose=reader.purpose,
        data_class=data_class,
        record=record,
        hash_master_key=kit.hash_key,
        # A page of 100 items from a few cameras shares a handful of verdicts; each item still
        # gets its own decision id (see policies/README.md, "Caching").
        cacheable=True,
    )


async def read_media(kit: FeedKit, reader: Reader, *, sha256: str) -> tuple[bytes, str, str]:
    """An image as the reader's agency may see it, with its content type and the decision id
    that granted it; 404 unless a releasable event references it, 503 while it waits for the
    hub's scan or policy is unavailable.

    Every distinct release input among the events referencing the image is decided (not just
    the newest event's), and the blur covers every region known on the image, whichever
    event or scan reported it (`release_media`).
    """
    async with kit.db.transaction() as conn:
        rows = await repository.select_media_events(conn, sha256=sha256, limit=MEDIA_CANDIDATES)
    image = await load_image(kit.db, sha256=sha256) if rows else None
    decisions: list[Released] = []
    if image is not None and len(rows) <= MEDIA_CANDIDATES:  # more: not all accounted for
        for record in await hydrate_payloads(kit, [row.payload for row in rows]):
            decisions.append(await release_payload(kit, reader, record, data_class="snapshot"))
    shown = None
    if decisions and image is not None:
        data = await asyncio.to_thread(read_stored, kit.media_root, image.storage_path)
        shown = await release_media(decisions, image=image, data=data)
    granted = next((d for d in decisions if d.allowed), None)
    ids = [d.decision_id for d in decisions]
    if shown is None or image is None or granted is None:
        await _media_audit(kit, reader, sha256, "feeds.media.refused", [], rows, ids)
        later = withheld_for_now(decisions, image=image) if image is not None else None
        raise later or MediaNotFoundError("no such image")
    await _media_audit(kit, reader, sha256, "feeds.media.read", rows, [], ids)
    return shown, image.content_type, granted.decision_id


async def _media_audit(
    kit: FeedKit,
    reader: Reader,
    sha256: str,
    action: str,
    shown: list[FeedRow],
    withheld: list[FeedRow],
    decision_ids: list[str],
) -> None:
    await _audit(
        kit,
        reader,
        "media",
        action,
        seqs=[r.seq for r in shown],
        withheld=[r.seq for r in withheld],
        decision_ids=decision_ids,
        target=f"media:{sha256}",
    )


async def acknowledge(kit: FeedKit, reader: Reader, *, seqs: list[int]) -> AckResult:
    """Record that the reader's agency processed these feed positions (idempotent).

    Positions are recorded as stated, without checking what they point at, so the answer
    says nothing about events the agency was never shown."""
    unique = sorted(set(seqs))
    async with kit.db.transaction() as conn:
        new = await repository.insert_acks(
            conn, agency=reader.agency, subject=reader.actor, seqs=unique
        )
        await append_entry(
            conn,
            _entry(
                reader,
                "soap",
                "feeds.events.acknowledge",
                seqs=unique,
                withheld=[],
                decision_ids=[],
            ),
        )
    return AckResult(acknowledged=new, already_acknowledged=len(unique) - new)


async def sequence_and_announce(kit: FeedKit, *, older_than_seconds: float = 0.0) -> list[int]:
    """Give committed events their feed positions and tell every process about them."""
    async with kit.db.transaction() as conn:
        if older_than_seconds > 0 and not await repository.has_pending(
            conn, older_than_seconds=older_than_seconds
        ):
            return []
        assigned = await repository.sequence_pending(conn, older_than_seconds=older_than_seconds)
    if assigned:
        await kit.bus.publish(FeedNotice(first=min(assigned), last=max(assigned)))
    return assigned


async def _audit(
    kit: FeedKit,
    reader: Reader,
    channel: Channel,
    action: str,
    *,
    seqs: list[int],
    withheld: list[int],
    decision_ids: list[str] | None = None,
    cursor: tuple[int, int] | None = None,
    target: str | None = None,
) -> None:
    entry = _entry(
        reader,
        channel,
        action,
        seqs=seqs,
        withheld=withheld,
        decision_ids=decision_ids or [],
        cursor=cursor,
        target=target,
    )
    async with kit.db.transaction() as conn:
        await append_entry(conn, entry)


def _entry(
    reader: Reader,
    channel: Channel,
    action: str,
    *,
    seqs: list[int],
    withheld: list[int],
    decision_ids: list[str],
    cursor: tuple[int, int] | None = None,
    target: str | None = None,
) -> AuditEntry:
    detail: dict[str, Any] = {
        "channel": channel,
        "agency": reader.agency,
        "seqs": seqs,
        "withheld": withheld,
        "decision_ids": decision_ids,
    }
    if cursor is not None:
        detail["from_seq"], detail["to_seq"] = cursor
    return AuditEntry(
        actor=reader.actor,
        action=action,
        target=target or f"agency:{reader.agency}",
        decision_id=reader.authz_decision_id,
        detail=detail,
    )
