"""The live feed's fan-out in one API process.

One task per process reads new feed positions from PostgreSQL after its own watermark
(woken by notices from the bus, so notices arriving out of order cannot reorder or skip
events), releases each event once per (agency, recipient, purpose) among this process's
subscribers, and queues the result on every matching subscriber. A subscriber whose queue
holds `buffer` undelivered messages is dropped: its queue is replaced by a close marker, and
the socket is closed with `SLOW_CONSUMER_CLOSE`. Live delivery is best-effort by design;
every message carries a REST cursor, so a dropped client resumes with `GET /v1/feeds/events`.

The hub also tells open sockets when this process starts evaluating a new policy bundle
(`changed`), so each socket re-checks what it may see at once (see live_access.py).
"""

import asyncio
import contextlib
from collections import defaultdict
from typing import Any

import msgspec
import structlog

from hub.audit import AuditEntry, append_entries
from hub.feeds import repository
from hub.feeds.kit import FeedKit
from hub.feeds.live_access import Closing
from hub.feeds.metrics import FeedMetrics, default_feed_metrics
from hub.feeds.repository import FeedRow
from hub.feeds.rules import encode_cursor, matches
from hub.feeds.schemas import FeedFilters, FeedNotice, LiveEvent
from hub.feeds.service import (
    SWEEP_GRACE_SECONDS,
    Reader,
    hydrate_payloads,
    release_payload,
    sequence_and_announce,
)

log = structlog.get_logger("hub.feeds")

SLOW_CONSUMER_CLOSE = 4008
DRAIN_BATCH = 500
# After an activation notice, how long to wait for this process's watcher to swap bundles.
ACTIVATION_WAIT_SECONDS = 15.0
ACTIVATION_POLL_SECONDS = 0.05
_ALL = FeedFilters()


class Subscriber:
    """One WebSocket's reader, filters and bounded queue (None in the queue: you are dropped)."""

    def __init__(self, reader: Reader, filters: FeedFilters, *, buffer: int) -> None:
        self.reader = reader
        self.filters = filters
        self.buffer = buffer
        self.queue: asyncio.Queue[LiveEvent | None] = asyncio.Queue()
        self.dropped = False
        self.closing: Closing | None = None  # set when the hub closes it for a reason
        self.gone = asyncio.Event()  # set when dropped, so a sender stuck in send is noticed

    def offer(self, message: LiveEvent) -> bool:
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
                rows = await repository.select_page(
                    conn, after=self._watermark, filters=_ALL, limit=DRAIN_BATCH
                )
            if not rows:
                return
            if self._subscribers:
                await self._fan_out(rows)
            self._watermark = rows[-1].seq
            if len(rows) < DRAIN_BATCH:
                return

    async def _fan_out(self, rows: list[FeedRow]) -> None:
        groups: dict[bytes, list[Subscriber]] = defaultdict(list)
        for subscriber in list(self._subscribers):
            if not subscriber.dropped:
                groups[
                    msgspec.json.encode([subscriber.reader.agency, subscriber.reader.state])
                ].append(subscriber)
        # One vault query per drained batch, shared by every group (release deep-copies).
        records = await hydrate_payloads(self._kit, [row.payload for row in rows])
        entries = [await self._fan_out_group(members, rows, records) for members in groups.values()]
        # Audited after sending, so the audit's commit (a WAL flush) is not on the live path's
        # latency; one statement for every group's entry (one per group, never per event).
        async with self._kit.db.transaction() as conn:
            await append_entries(conn, [entry for entry in entries if entry is not None])

    async def _fan_out_group(
        self, members: list[Subscriber], rows: list[FeedRow], records: list[dict[str, Any]]
    ) -> AuditEntry | None:
        reader = members[0].reader
        sent: list[int] = []
        decisions: list[str] = []
        withheld: list[int] = []
        for row, record in zip(rows, records, strict=True):
            wanted = [
                s
                for s in members
                if matches(
                    s.filters,
                    camera_id=row.camera_id,
                    classes=row.classes,
                    captured_at=row.captured_at,
                )
            ]
            if not wanted:
                continue
            released = await release_payload(
                self._kit, reader, record, data_class="detection_event"
            )
            decisions.append(released.decision_id)
            if not released.allowed or released.record is None:
                withheld.append(row.seq)
                continue
            message = LiveEvent(
                seq=row.seq,
                event_id=row.event_id,
                decision_id=released.decision_id,
                record=released.record,
                cursor=encode_cursor(row.seq, agency=reader.agency, key=self._kit.cursor_key),
            )
            for subscriber in wanted:
                subscriber.offer(message)
            sent.append(row.seq)
        if not sent and not withheld:
            return None
        return AuditEntry(
            actor=f"agency:{reader.agency}",
            action="feeds.live.push",
            target=f"agency:{reader.agency}",
            detail={
                "channel": "live",
                "subscribers": sorted({s.reader.actor for s in members}),
                "seqs": sent,
                "withheld": withheld,
                "decision_ids": decisions,
            },
        )
