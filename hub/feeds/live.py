"""The live feed's fan-out in one API process.

One task per process reads new feed positions from PostgreSQL after its own watermark
(woken by notices from the bus, so notices arriving out of order cannot reorder or skip
events) and releases them as a page is released: per *audience* (the pages' audience key:
recipient, purpose, subscription; and the agency, whose key signs the cursors), only the
events its subscription wants and one of its sockets' filters asks for, with one
`hub/release/decision` per distinct verdict among them (its logged input names the events it
covered, so the decision log answers "why was event X released to agency Y") and one
redaction plan per verdict. Each released item is encoded once, and the same text frame is
queued on every subscriber of the audience whose filters want it. A subscriber whose queue
holds `buffer` undelivered messages is dropped: its queue is replaced by a close marker, and
the socket is closed with `SLOW_CONSUMER_CLOSE`. Live delivery is best-effort by design;
every message carries a REST cursor, so a dropped client resumes with `GET /v1/feeds/events`.

The hub also tells open sockets when this process starts evaluating a new policy bundle
(`changed`), so each socket re-checks what it may see at once (see live_access.py).
"""

import asyncio
import contextlib
from collections import defaultdict

import msgspec
import structlog

from hub.audit import AuditEntry
from hub.feeds import repository
from hub.feeds.kit import FeedKit
from hub.feeds.live_access import Closing
from hub.feeds.metrics import FeedMetrics, default_feed_metrics
from hub.feeds.pages import audience_of
from hub.feeds.release import ReleasedBatch, apply_verdicts, decide_groups, reader_hash_key
from hub.feeds.repository import FeedRow, LiveRow
from hub.feeds.rules import matches, subscribed
from hub.feeds.schemas import FeedFilters, FeedItem, FeedNotice, LiveEvent
from hub.feeds.service import (
    SWEEP_GRACE_SECONDS,
    Reader,
    hydrate_rows_yielding,
    sequence_and_announce,
    shown_items,
)

log = structlog.get_logger("hub.feeds")

SLOW_CONSUMER_CLOSE = 4008
DRAIN_BATCH = 500
# After an activation notice, how long to wait for this process's watcher to swap bundles.
ACTIVATION_WAIT_SECONDS = 15.0
ACTIVATION_POLL_SECONDS = 0.05
_ENCODER = msgspec.json.Encoder()


class Subscriber:
    """One WebSocket's reader, filters and bounded queue of frames (None: you are dropped)."""

    def __init__(self, reader: Reader, filters: FeedFilters, *, buffer: int) -> None:
        self.reader = reader
        self.filters = filters
        self.buffer = buffer
        # What release depends on (the pages' audience) and the agency cursors are signed for.
        self.audience = (reader.agency, audience_of(reader).key)
        # Text frames, each encoded once for every subscriber of its audience.
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.dropped = False
        self.closing: Closing | None = None  # set when the hub closes it for a reason
        self.gone = asyncio.Event()  # set when dropped, so a sender stuck in send is noticed

    def offer(self, message: str) -> bool:
        """Queue a message; past the buffer, drop the subscriber instead (False)."""
        if self.dropped:
            return False
        if self.queue.qsize() >= self.buffer:
            reason = f"slow consumer: more than {self.buffer} messages behind"
            self.close(Closing(SLOW_CONSUMER_CLOSE, reason, "slow_consumer"))
            return False
        self.queue.put_nowait(message)
        return True

    def close(self, closing: Closing) -> None:
        """Stop sending at once: drop what is queued and tell the socket why it closes."""
        if self.closing is None:
            self.closing = closing
        self.dropped = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)
        self.gone.set()


class LiveHub:
    """This process's live subscribers and the task that feeds them."""

    def __init__(self, kit: FeedKit, *, metrics: FeedMetrics | None = None) -> None:
        self._kit = kit
        self.metrics = metrics or default_feed_metrics()
        self._subscribers: set[Subscriber] = set()
        self._watermark = 0
        self._signal: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._revision: str | None = None
        self._changed: asyncio.Event | None = None
        self._following: asyncio.Task[None] | None = None

    async def subscribe(self, reader: Reader, filters: FeedFilters) -> Subscriber:
        """Add a subscriber; it gets events sequenced from now on."""
        if self._task is None:
            async with self._kit.db.transaction() as conn:
                self._watermark = await repository.last_seq(conn)
            self._signal = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="feeds-live")
        await self._kit.bus.start()
        subscriber = Subscriber(reader, filters, buffer=self._kit.live_buffer)
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Forget a subscriber (its socket closed)."""
        self._subscribers.discard(subscriber)

    async def changed(self, seconds: float) -> None:
        """Return when this process starts running another bundle, or after `seconds`."""
        if self._changed is None:
            self._changed = asyncio.Event()
            self._revision = self._kit.policy.revision
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), seconds)

    def note_revision(self) -> bool:
        """Wake every waiter of `changed` if the active revision moved; True when it did."""
        revision = self._kit.policy.revision
        if self._changed is None or revision == self._revision:
            return False
        self._revision = revision
        self._changed.set()
        self._changed = asyncio.Event()
        return True

    async def on_activation(self) -> None:
        """Bus handler of activation notices: follow this process's watcher until it runs
        the new bundle (the notice arrives here and there at about the same time)."""
        if self._following is None or self._following.done():
            self._following = asyncio.create_task(self._follow_activation())

    async def _follow_activation(self) -> None:
        for _ in range(int(ACTIVATION_WAIT_SECONDS / ACTIVATION_POLL_SECONDS)):
            if self.note_revision():
                return
            await asyncio.sleep(ACTIVATION_POLL_SECONDS)

    async def on_notice(self, notice: FeedNotice | None) -> None:
        """Bus handler: wake the fan-out on a notice; on a tick, sequence stragglers (and
        notice a bundle swap whose notice was lost)."""
        if notice is None:
            self.note_revision()
            await sequence_and_announce(self._kit, older_than_seconds=SWEEP_GRACE_SECONDS)
            return
        if self._signal is not None and notice.last > self._watermark:
            self._signal.set()

    async def aclose(self) -> None:
        """Stop the fan-out task (idempotent)."""
        if self._following is not None:
            self._following.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, 5.0)
            self._task = None

    async def _run(self) -> None:
        assert self._signal is not None  # noqa: S101 - set before the task starts
        while True:
            await self._signal.wait()
            self._signal.clear()
            try:
                await self._drain()
            except Exception:  # keep serving; the next notice retries from the watermark
                log.exception("live fan-out failed")
                await asyncio.sleep(0.5)

    async def _drain(self) -> None:
        while True:
            async with self._kit.db.transaction() as conn:
                rows = await repository.select_live(conn, after=self._watermark, limit=DRAIN_BATCH)
            if not rows:
                return
            if self._subscribers:
                await self._fan_out(rows)
            self._watermark = rows[-1].seq
            if len(rows) < DRAIN_BATCH:
                return

    async def _fan_out(self, rows: list[LiveRow]) -> None:
        audiences: dict[tuple[str, str], list[Subscriber]] = defaultdict(list)
        for subscriber in list(self._subscribers):
            if not subscriber.dropped:
                audiences[subscriber.audience].append(subscriber)
        # The vault rows came with the drained rows: opened once per batch, shared by every
        # audience; each audience redacts its own copy (redaction works in place), decoded
        # from this one encoding.
        records = await hydrate_rows_yielding(self._kit, rows)
        encoded = [msgspec.json.encode(record) for record in records]
        entries = [await self._release_to(members, rows, encoded) for members in audiences.values()]
        # Audited after sending, so the audit's commit (a WAL flush) is not on the live path's
        # latency; one statement for every audience's entry (one per audience, never per event),
        # sharing the process's group commit with feed pages (ADR 0025).
        await self._kit.audit.append_many([entry for entry in entries if entry is not None])

    async def _release_to(
        self, members: list[Subscriber], rows: list[LiveRow], encoded: list[bytes]
    ) -> AuditEntry | None:
        """Release the rows one audience may be offered, once per distinct verdict, and queue
        each released item's frame on every member whose filters want it."""
        reader = members[0].reader
        offered = [
            (row, data) for row, data in zip(rows, encoded, strict=True) if _offered(members, row)
        ]
        if not offered:
            return None
        released = await _release(self._kit, reader, offered, after=self._watermark)
        by_seq = {row.seq: row for row, _ in offered}
        shown = shown_items(self._kit, reader, released.items)
        for item, seen in zip(released.items, shown, strict=True):
            row = by_seq[item.seq]
            frame = self._frame(reader, seen, after=item.seq)
            for subscriber in members:
                if _wants(subscriber, row):
                    subscriber.offer(frame)
        return AuditEntry(
            actor=f"agency:{reader.agency}",
            action="feeds.live.push",
            target=f"agency:{reader.agency}",
            detail={
                "channel": "live",
                "subscribers": sorted({s.reader.actor for s in members}),
                "seqs": [item.seq for item in released.items],
                "withheld": released.withheld,
                "decision_ids": [item.decision_id for item in released.items],
            },
        )

    def _frame(self, reader: Reader, item: FeedItem, *, after: int) -> str:
        """The text frame of one released item as its agency is shown it, encoded once for
        its whole audience; its cursor resumes after hub-wide position `after`."""
        message = LiveEvent(
            seq=item.seq,
            event_id=item.event_id,
            decision_id=item.decision_id,
            record=item.record,
            cursor=self._kit.cursors.encode(after, agency=reader.agency),
        )
        return _ENCODER.encode(message).decode()


def _wants(subscriber: Subscriber, row: LiveRow) -> bool:
    """Whether a socket's own filters ask for the event."""
    return matches(
        subscriber.filters,
        camera_id=row.camera_id,
        classes=row.classes,
        captured_at=row.captured_at,
    )


def _offered(members: list[Subscriber], row: LiveRow) -> bool:
    """What pages would offer the audience (its subscription; the coarse verdict is the
    release decision itself), and only if one of its sockets' filters wants it."""
    subscription = members[0].reader.subscription
    return subscribed(
        subscription,
        camera_id=row.camera_id,
        classes=row.classes,
        max_confidence=row.max_confidence,
    ) and any(_wants(s, row) for s in members)


async def _release(
    kit: FeedKit, reader: Reader, offered: list[tuple[LiveRow, bytes]], *, after: int
) -> ReleasedBatch:
    """One release decision per distinct verdict over the offered rows, as a page's
    (hub/feeds/release.py); the decisions' logged input names the events they covered.

    A verdict policy could not give (it failed closed) withholds only the events it covers:
    live delivery is best-effort and the REST cursor resumes them, whereas a page stops
    there so its cursor never passes them."""
    rows: list[FeedRow] = [row for row, _ in offered]
    records = [msgspec.json.decode(data) for _, data in offered]
    verdicts = await decide_groups(
        kit.policy, recipient=reader.recipient, purpose=reader.purpose, rows=rows, records=records
    )
    decided = [i for i, verdict in enumerate(verdicts) if verdict.error is None]
    batch = await apply_verdicts(
        [rows[i] for i in decided],
        [records[i] for i in decided],
        [verdicts[i] for i in decided],
        hash_key=reader_hash_key(kit.hash_key, reader.recipient),
        after=after,
    )
    failed = [row.seq for row, verdict in zip(rows, verdicts, strict=True) if verdict.error]
    return ReleasedBatch(
        items=batch.items,
        withheld=sorted(batch.withheld + failed),
        last=rows[-1].seq,
        stopped=False,
    )
