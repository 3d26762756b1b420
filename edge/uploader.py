"""Deliver the spool to the hub: snapshots first, then events in batches, signed.

An event leaves the spool only when the hub answered `accepted` or `duplicate` for it; a
`rejected` one is set aside with the reason. Two rejections are tried again later instead: a
future capture time (the hub accepts it once that time has come) and a camera not (yet)
registered to this node (accepted once an admin registers it, until the event is older than
the hub's age limit, which rejects it for good). Connection errors and busy
answers (429/502/503/504) back off exponentially with jitter or as `Retry-After` asks.
"""

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import msgspec

from edge.backoff import RETRY_STATUSES, backoff_delay, retry_after
from edge.signing import RequestSigner
from edge.spool import PendingEvent, Spool
from hub.contracts.detection_v1 import BatchResult, EventBatch

log = logging.getLogger("edge.uploader")

FUTURE_REASON = "captured_at is in the future"
FUTURE_RETRY_SECONDS = 30.0
# The hub's reason ends so for a camera its registry does not give this node.
UNREGISTERED_REASON = "is not registered to this node"
UNREGISTERED_RETRY_SECONDS = 300.0
AUTH_STATUSES = frozenset({401, 403})


@dataclass(frozen=True, slots=True)
class UploadOptions:
    """Where and how to upload."""

    hub_url: str
    batch_size: int = 100
    idle_interval: float = 1.0
    backoff_base: float = 0.5
    backoff_cap: float = 60.0


@dataclass(slots=True)
class UploadTotals:
    """What this uploader did since it started."""

    requests: int = 0
    batches: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    media: int = 0
    retries: int = 0


class RetryLaterError(Exception):
    """The hub cannot take this now; try again after `delay` seconds."""

    def __init__(self, delay: float, why: str) -> None:
        super().__init__(why)
        self.delay = delay


@dataclass(slots=True)
class Uploader:
    """Drains one spool into one hub."""

    spool: Spool
    client: httpx.AsyncClient
    signer: RequestSigner
    options: UploadOptions
    # Jitter only; nothing here needs unpredictable numbers.
    rng: random.Random = field(default_factory=random.Random)
    totals: UploadTotals = field(default_factory=UploadTotals)
    _failures: int = 0
    _batch_size: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Upload until `stop` is set: at once while there is work, else every interval."""
        while not stop.is_set():
            try:
                sent = await self.upload_once()
            except RetryLaterError as exc:
                self._failures += 1
                self.totals.retries += 1
                log.warning("upload postponed %.1f s: %s", exc.delay, exc)
                wait = exc.delay
            else:
                self._failures = 0
                wait = 0.0 if sent else self.options.idle_interval
            if wait and await _sleep(stop, wait):
                return

    async def upload_once(self) -> int:
        """Send one batch (and its snapshots); the number of events settled."""
        size = self._batch_size or self.options.batch_size
        pending = await asyncio.to_thread(self.spool.next_batch, size)
        if not pending:
            return 0
        await self._upload_media([p.seq for p in pending])
        # Snapshots refused for good were dropped: read the events again without them.
        pending = await asyncio.to_thread(self.spool.next_batch, size)
        return await self._send_events(pending)

    async def _upload_media(self, seqs: list[int]) -> None:
        for media in await asyncio.to_thread(self.spool.media_to_upload, seqs):
            url = f"{self.options.hub_url}/v1/edge/media/{media.sha256}"
            response = await self._post(url, media.data, media.content_type)
            if response.is_success:
                await asyncio.to_thread(self.spool.mark_media_uploaded, media.sha256)
                self.totals.media += 1
            elif response.status_code in AUTH_STATUSES:
                raise RetryLaterError(self._backoff(), f"media refused: {_detail(response)}")
            else:  # 413, 415, 422: this image will never be taken
                log.warning("snapshot %s refused: %s", media.sha256[:12], _detail(response))
                await asyncio.to_thread(self.spool.drop_media, media.sha256)

    async def _send_events(self, pending: list[PendingEvent]) -> int:
        body = msgspec.json.encode(EventBatch(events=[p.event for p in pending]))
        # The hub exports it as hub_edge_spool_depth{node}: how far behind this node is.
        depth = await asyncio.to_thread(self.spool.pending)
        response = await self._post(
            f"{self.options.hub_url}/v1/edge/events",
            body,
            "application/json",
            extra_headers={"Hub-Spool-Depth": str(depth)},
        )
        if response.status_code in (400, 413, 422) and len(pending) > 1:
            # Something in the batch is refused as a whole: narrow down, one event at a time.
            self._batch_size = 1
            log.warning("batch refused (%d); sending one by one", response.status_code)
            return 0
        if response.status_code in (400, 422):
            reason = f"refused as a whole: {_detail(response)}"[:500]
            await asyncio.to_thread(self.spool.settle, done=[], rejected=[(pending[0].seq, reason)])
            self.totals.rejected += 1
            return 1
        if not response.is_success:
            raise RetryLaterError(self._backoff(), f"events refused: {_detail(response)}")
        result = msgspec.json.decode(response.content, type=BatchResult)
        await self._settle(pending, result)
        self._batch_size = 0
        return len(pending)

    async def _settle(self, pending: list[PendingEvent], result: BatchResult) -> None:
        by_id = {p.event.event_id: p.seq for p in pending}
        done, rejected, later = [], [], []
        for answer in result.results:
            seq = by_id.get(answer.event_id)
            if seq is None:
                continue
            wait = retry_delay(answer.reason or "")
            if answer.status in ("accepted", "duplicate"):
                done.append(seq)
            elif wait is not None:
                later.append((seq, time.time() + wait))
            else:
                rejected.append((seq, answer.reason or "rejected"))
        await asyncio.to_thread(self.spool.settle, done=done, rejected=rejected, retry_later=later)
        self.totals.batches += 1
        self.totals.accepted += result.accepted
        self.totals.duplicate += result.duplicate
        self.totals.rejected += len(rejected)

    async def _post(
        self,
        url: str,
        body: bytes,
        content_type: str,
        *,
        extra_headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One signed POST; RetryLaterError for connection errors and busy answers."""
        headers = {"Content-Type": content_type, **(extra_headers or {})}
        request = self.client.build_request("POST", url, content=body, headers=headers)
        # Sign exactly the URL httpx sends, with a fresh nonce and time for every attempt.
        request.headers.update(self.signer.sign(method="POST", url=str(request.url), body=body))
        self.totals.requests += 1
        try:
            response = await self.client.send(request)
        except httpx.TransportError as exc:
            raise RetryLaterError(self._backoff(), f"hub unreachable ({exc!r})") from exc
        if response.status_code in RETRY_STATUSES:
            asked = retry_after(response, now=datetime.now(UTC))
            delay = self._backoff() if asked is None else asked + self.rng.uniform(0.0, 0.25)
            raise RetryLaterError(delay, f"hub busy ({response.status_code})")
        return response

    def _backoff(self) -> float:
        return backoff_delay(
            self._failures, self.rng, base=self.options.backoff_base, cap=self.options.backoff_cap
        )


def _detail(response: httpx.Response) -> str:
    """The problem detail the hub sent, or the start of the body."""
    try:
        payload = response.json()
    except ValueError:
        return f"{response.status_code} {response.text[:200]}"
    detail = payload.get("detail", payload) if isinstance(payload, dict) else payload
    return f"{response.status_code} {detail}"


async def _sleep(stop: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds` or until `stop` is set; True when stopped."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


def retry_delay(reason: str) -> float | None:
    """Seconds until a rejected event is worth sending again, or None: rejected for good."""
    if reason.startswith(FUTURE_REASON):
        return FUTURE_RETRY_SECONDS
    if reason.endswith(UNREGISTERED_REASON):
        return UNREGISTERED_RETRY_SECONDS
    return None
