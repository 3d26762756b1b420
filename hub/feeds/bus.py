"""`FeedBus`: this process's ear on the feed's Redis channel.

After new events get their feed positions, the process that sequenced them publishes a
`FeedNotice` (a range of positions, no personal data). Every API process keeps one
subscription (started on first use), wakes its long-polls and hands the notice to its live
hub. A notice only says "look now": readers always read positions from PostgreSQL, so a lost
notice delays an item (until the next notice or the periodic tick), it never loses one.

The same subscription hears the policy bundle activation notices (hub/policy/bundles), so
live sockets re-check what they may see as soon as their process runs the new bundle.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import msgspec
import structlog
from redis.exceptions import RedisError

from hub.feeds.schemas import FeedNotice
from hub.kit.redis import RedisStore
from hub.policy.bundles.notices import activation_channel

log = structlog.get_logger("hub.feeds")

NoticeHandler = Callable[[FeedNotice | None], Awaitable[None]]
ActivationHandler = Callable[[], Awaitable[None]]
_TRANSIENT = (OSError, TimeoutError, RedisError)


class FeedBus:
    """Publishes and hears feed notices; long-polls wait on it, the live hub listens to it."""

    def __init__(self, redis: RedisStore, *, tick_seconds: float = 2.0) -> None:
        self._redis = redis
        self.channel = redis.key("feeds", "events")
        self.activations = activation_channel(redis)
        self._tick = tick_seconds
        self._generation = 0
        self._wakeup: asyncio.Event | None = None
        self._handlers: list[NoticeHandler] = []
        self._activation_handlers: list[ActivationHandler] = []
        self._task: asyncio.Task[None] | None = None
        self._listening: asyncio.Event | None = None
        self._stopping = False

    async def publish(self, notice: FeedNotice) -> None:
        """Tell every process new positions exist; a Redis failure is logged, not raised
        (readers still find the events on their next look)."""
        try:
            await self._redis.client.publish(self.channel, msgspec.json.encode(notice))
        except _TRANSIENT as exc:
            log.warning("feed notice not published", error=repr(exc)[:200])

    def add_handler(self, handler: NoticeHandler) -> None:
        """Call `handler` for each notice heard, and with None on every tick."""
        self._handlers.append(handler)

    def add_activation_handler(self, handler: ActivationHandler) -> None:
        """Call `handler` for each policy bundle activation notice heard."""
        self._activation_handlers.append(handler)

    async def start(self, *, subscribe_wait: float = 2.0) -> None:
        """Subscribe (once per process), waiting briefly so a notice sent next is heard."""
        if self._task is not None:
            return
        self._wakeup, self._listening = asyncio.Event(), asyncio.Event()
        self._task = asyncio.create_task(self._follow(), name="feeds-bus")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), subscribe_wait)

    def mark(self) -> int:
        """A token to pass to `wait`: notices heard after it end the wait at once."""
        return self._generation

    async def wait(self, mark: int, *, seconds: float) -> None:
        """Return when a notice arrives after `mark` (or at once if one already has), or
        after `seconds`."""
        await self.start()
        wakeup = self._wakeup
        if self._generation != mark or wakeup is None or seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeup.wait(), seconds)

    async def aclose(self) -> None:
        """Stop listening (idempotent)."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, 5.0)
            self._task = None

    async def _follow(self) -> None:
        while not self._stopping:
            try:
                await self._listen()
            except Exception as exc:  # the bus must outlive any one failure
                if self._stopping:
                    return
                log.warning("feed notices unavailable; ticking only", error=repr(exc)[:200])
                await asyncio.sleep(min(self._tick, 1.0))
                await self._dispatch(None)

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        pubsub = self._redis.client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel, self.activations)
            if self._listening is not None:
                self._listening.set()
            due = loop.time()
            while not self._stopping:
                message = await pubsub.get_message(timeout=max(0.0, min(1.0, due - loop.time())))
                if message is not None and _channel(message) == self.activations:
                    await self._activated()
                elif message is not None:
                    await self._dispatch(_decode(message.get("data")))
                if loop.time() >= due:
                    await self._dispatch(None)
                    due = loop.time() + self._tick
        finally:
            with contextlib.suppress(*_TRANSIENT):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _dispatch(self, notice: FeedNotice | None) -> None:
        if notice is not None:
            self._generation += 1
            if self._wakeup is not None:
                self._wakeup.set()
                self._wakeup = asyncio.Event()
        for handler in self._handlers:
            try:
                await handler(notice)
            except Exception:  # one failing handler must not silence the others
                log.exception("feed notice handler failed")

    async def _activated(self) -> None:
        for handler in self._activation_handlers:
            try:
                await handler()
            except Exception:  # one failing handler must not silence the others
                log.exception("activation notice handler failed")


def _channel(message: dict[str, object]) -> str:
    channel = message.get("channel")
    return channel.decode() if isinstance(channel, bytes) else str(channel)


def _decode(data: object) -> FeedNotice | None:
    if not isinstance(data, bytes | str):
        return None
    try:
        return msgspec.json.decode(data, type=FeedNotice)
    except msgspec.DecodeError:
        return None
