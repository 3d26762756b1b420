"""Use cases of feeds: who reads, media, acknowledgements, sequencing, the access audit
(pages of the pull feeds are in pages.py).

Every item leaves through `release()` for the reader's agency; a denied item is left out,
an item policy could not decide (it failed closed) ends the page there, so the cursor never
moves past an event that may be releasable once policy is back. Every access is audited,
one entry per page (ids and decision ids, never payloads).
"""

import asyncio
from collections.abc import Sequence
from functools import partial
from typing import Any

import asyncpg
import msgspec
import structlog

from hub.audit import AuditEntry, append_entry
from hub.delivery.schemas import Subscription
from hub.feeds import repository
from hub.feeds.errors import AgencyPausedError, MediaNotFoundError, NotAnAgencyError
from hub.feeds.kit import FeedKit
from hub.feeds.release import YIELD_EVERY_ROWS
from hub.feeds.repository import FeedRow
from hub.feeds.rules import recipient_for
from hub.feeds.schemas import AckResult, Channel, FeedItem, FeedNotice, PositionRead
from hub.identity.schemas import Subject
from hub.kit.errors import NotFoundError
from hub.media import load_image, read_stored
from hub.policy.release import Released, release, release_media, withheld_for_now
from hub.policy.schemas import Recipient
from hub.retention import hydrate_sealed, keys_for

log = structlog.get_logger("hub.feeds")

MAX_LIMIT = 500
MAX_WAIT_SECONDS = 30.0
# Pending events older than this are sequenced by readers' processes too (crash recovery).
SWEEP_GRACE_SECONDS = 2.0
# How long a read waits for events this process accepted to get their positions (a quiet hub
# sequences them in milliseconds; beside heavy ingest a read is staler rather than slower).
SETTLE_WAIT_SECONDS = 0.1
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


async def refuse_paused(kit: FeedKit, reader: Reader) -> None:
    """Raise `AgencyPausedError` (403 `agency_paused`) while the reader's agency is paused:
    a pause stops releases to the agency on the pull feeds as on pushed deliveries and the
    live feed (agencies are cached for `AGENCY_TTL_SECONDS`, as for the live feed)."""
    agency = await kit.agencies.get(reader.agency)
    if agency is not None and agency.status == "paused":
        raise AgencyPausedError(
            f"agency_paused: agency {reader.agency!r} is paused; nothing is released to it "
            "until an admin resumes it"
        )


def hydrate_rows(kit: FeedKit, rows: Sequence[FeedRow]) -> list[dict[str, Any]]:
    """Feed rows' payloads as records, their PII opened from the vault rows read with them."""
    records: list[dict[str, Any]] = [msgspec.json.decode(row.payload) for row in rows]
    sealed = [(row.event_pk, row.captured_at, row.sealed) for row in rows]
    return hydrate_sealed(partial(keys_for, kit.settings), records, sealed)


async def hydrate_rows_yielding(kit: FeedKit, rows: Sequence[FeedRow]) -> list[dict[str, Any]]:
    """`hydrate_rows`, `YIELD_EVERY_ROWS` rows at a time with the event loop let go between
    (a page runs in the process that ingests: hub/feeds/release.py)."""
    records: list[dict[str, Any]] = []
    for start in range(0, len(rows), YIELD_EVERY_ROWS):
        if start:
            await asyncio.sleep(0)
        records += hydrate_rows(kit, rows[start : start + YIELD_EVERY_ROWS])
    return records


def shown_items(kit: FeedKit, reader: Reader, items: list[FeedItem]) -> list[FeedItem]:
    """The items as the reader's agency is shown them: each position its agency's own
    pseudonym (ADR 0042). The audit and the decision log keep the hub-wide positions."""
    shown = kit.positions.shown([item.seq for item in items], agency=reader.agency)
    return [msgspec.structs.replace(i, seq=n) for i, n in zip(items, shown, strict=True)]


async def release_payload(
    kit: FeedKit, reader: Reader, record: dict[str, Any], *, data_class: str
) -> Released:
    """Release a record `hydrate_rows` made."""
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
    await catch_up(kit)
    async with kit.db.transaction() as conn:
        rows = await repository.select_media_events(conn, sha256=sha256, limit=MEDIA_CANDIDATES)
    image = await load_image(kit.db, sha256=sha256) if rows else None
    decisions: list[Released] = []
    if image is not None and len(rows) <= MEDIA_CANDIDATES:  # more: not all accounted for
        for record in hydrate_rows(kit, rows):
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
    await audit_access(
        kit,
        reader,
        "media",
        action,
        seqs=[r.seq for r in shown],
        withheld=[r.seq for r in withheld],
        decision_ids=decision_ids,
        target=f"media:{sha256}",
    )


async def acknowledge(kit: FeedKit, reader: Reader, *, shown: list[int]) -> AckResult:
    """Record that the reader's agency processed these feed positions (idempotent), stated
    as the agency was shown them (`PositionError` for a number never shown).

    Positions are recorded as stated, without checking what they point at, so the answer
    says nothing about events the agency was never shown."""
    unique = sorted(set(kit.positions.stated(shown, agency=reader.agency)))
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


async def explain_positions(
    kit: FeedKit, *, agency: str, numbers: Sequence[int], hub_wide: bool = False
) -> list[PositionRead]:
    """What positions of an agency's feed stand for, for an operator looking into what the
    agency reports (ADR 0042): `numbers` as the agency was shown them or, with `hub_wide`,
    as the audit log names them. NotFoundError for an agency that is not registered (a
    misspelt name would give another agency's numbering)."""
    if await kit.agencies.get(agency) is None:
        raise NotFoundError(f"no agency {agency!r}", code="agency_not_found")
    if hub_wide:
        seqs = list(numbers)
        shown = kit.positions.shown(seqs, agency=agency)
    else:
        shown = list(numbers)
        seqs = kit.positions.stated(shown, agency=agency)
    events = await repository.select_events_at(kit.db.pool, seqs)
    return [
        PositionRead(
            agency=agency,
            shown=n,
            seq=seq,
            event_id=events[seq][0] if seq in events else None,
            captured_at=events[seq][1] if seq in events else None,
        )
        for n, seq in zip(shown, seqs, strict=True)
    ]


async def catch_up(kit: FeedKit) -> None:
    """Let this process's sequencing runs under way finish before reading the feed: ingest
    answers without waiting for positions (ADR 0022)."""
    await kit.notifier.settle(within=SETTLE_WAIT_SECONDS)


async def sequence_and_announce(
    kit: FeedKit, *, older_than_seconds: float = 0.0
) -> repository.Sequenced:
    """Give committed events their feed positions and tell every process about them."""
    async with kit.db.transaction() as conn:
        if older_than_seconds > 0 and not await repository.has_pending(
            conn, older_than_seconds=older_than_seconds
        ):
            return repository.Sequenced(0, 0, 0)
        assigned = await repository.sequence_pending(conn, older_than_seconds=older_than_seconds)
    if assigned.positions:
        await kit.bus.publish(FeedNotice(first=assigned.first, last=assigned.last))
    if kit.pending_vacuum.due(assigned.positions):
        await _vacuum_pending(kit)
    return assigned


async def _vacuum_pending(kit: FeedKit) -> None:
    """Clear the queue's dead rows: under load each sequencing run's scan walked past those of
    every earlier run since autovacuum last came (1.4 ms growing to 8.4 ms a run within 25 s
    of `bench/ingest.py`). Best effort: a failure only leaves that to autovacuum."""
    try:
        async with kit.db.pool.acquire() as conn:
            await repository.vacuum_pending(conn)
    except (asyncpg.PostgresError, OSError) as exc:
        log.warning("feed queue vacuum skipped", error=repr(exc)[:200])


async def audit_access(
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
    """Audit one feed access (ids and decision ids, never payloads); returns once committed."""
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
    # Nothing else to commit with it: the process's appender commits it together with
    # concurrent pages' entries (one WAL flush for all, ADR 0025) and returns once it has.
    await kit.audit.append(entry)


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
