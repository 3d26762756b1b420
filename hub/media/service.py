"""Use cases of media: record the regions events report, load an image with everything known
on it, scan an image with the hub's models, and find images still to scan."""

import asyncio
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import asyncpg
import structlog
from arq.connections import ArqRedis
from redis.exceptions import RedisError

from hub.audit import AuditEntry, append_entry
from hub.contracts.detection_v1 import DetectionEvent
from hub.kit.clock import Clock, utcnow
from hub.kit.db import Database
from hub.kit.redis import RedisStore
from hub.media import repository
from hub.media.rules import regions_of
from hub.media.scan import Box, MediaScanner, ScanError, timed_scan
from hub.media.schemas import KnownImage, Region, RegionCreate, ScanOutcome

SCAN_FUNCTION = "scan_media"
# Images queued per reconcile run (every minute): about half of what one worker scans in a
# minute, so a backlog (after migration 0009, or an outage) drains without flooding the queue.
RECONCILE_BATCH = 500
# A queued scan not started within this long is dropped by arq; reconcile queues it again.
# (Without it, a job key that outlived its queue entry would block a new one for a day.)
JOB_EXPIRES = timedelta(hours=1)

log = structlog.get_logger("hub.media")


@dataclass(frozen=True, slots=True)
class EventRegions:
    """A batch's regions as parameters of ingest's events INSERT (media owns the SQL)."""

    columns: tuple[str, ...]  # `repository.region_columns`

    @staticmethod
    def sql(*, first: int, inserted: str) -> str:
        """The CTE body recording the regions of the events CTE `inserted` returns, reading
        the columns as parameters `first`.. (`first + len(columns) - 1`)."""
        return repository.insert_regions_of_inserted(first=first, inserted=inserted)


def event_regions(events: Iterable[DetectionEvent], *, node_id: UUID) -> EventRegions:
    """The regions the events report on the images they reference, for ingest to record in
    its events INSERT (`EventRegions.sql`): only those of the events it actually inserts."""
    return EventRegions(columns=repository.region_columns(regions_of(events, node_id=node_id)))


async def load_image(db: Database, *, sha256: str) -> KnownImage | None:
    """A stored image with every region known on it, None when it was never uploaded."""
    async with db.pool.acquire() as conn:
        return await repository.select_image(conn, sha256=sha256)


def read_stored(media_root: str | Path, storage_path: str) -> bytes | None:
    """The bytes of a stored image, None when missing or outside the media root (blocking)."""
    root = Path(media_root).resolve()
    path = (root / storage_path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path.read_bytes()


@dataclass(slots=True)
class ScanKit:
    """The scanner of one process, built on first use (loading models takes a second), and
    the bound on concurrent scans: model work runs in threads, never on the event loop."""

    media_root: Path
    threads: int = 1
    concurrency: int = 1
    model_cache: Path | None = None  # None: the edge's default cache folder
    _scanner: MediaScanner | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _slots: asyncio.Semaphore | None = None

    @property
    def busy(self) -> bool:
        """Whether every scan slot is taken (a new scan would wait)."""
        return self._slots is not None and self._slots.locked()

    def scanner(self) -> MediaScanner:
        """The scanner (blocking on first call: call it from a thread)."""
        with self._lock:
            if self._scanner is None:
                self._scanner = MediaScanner.from_installed(
                    cache_dir=self.model_cache, threads=self.threads
                )
            return self._scanner

    def slot(self) -> asyncio.Semaphore:
        """The bound on concurrent scans (`async with kit.slot():`)."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)
        return self._slots

    async def scan(self, data: bytes) -> tuple[list[Box], float]:
        """Boxes in an image and the scan's CPU milliseconds, off the event loop."""
        async with self.slot():
            return await asyncio.to_thread(lambda: timed_scan(self.scanner(), data))


async def scan_image(
    db: Database, kit: ScanKit, *, sha256: str, clock: Clock = utcnow
) -> ScanOutcome:
    """Scan one stored image once and keep its boxes as source 'hub' (safe to run twice: a
    scanned image is skipped, and a scan replaces the hub's earlier boxes)."""
    async with db.pool.acquire() as conn:
        stored = await repository.select_scan_state(conn, sha256=sha256)
    if stored is None:
        return ScanOutcome(sha256=sha256, status="missing")
    if stored["scanned_at"] is not None:
        return ScanOutcome(sha256=sha256, status="skipped")
    data = await asyncio.to_thread(read_stored, kit.media_root, stored["storage_path"])
    boxes: list[Box] = []
    cpu_ms, error = 0.0, None
    try:
        if data is None:
            raise ScanError("the stored file is missing")
        boxes, cpu_ms = await kit.scan(data)
    except ScanError as exc:
        error = str(exc)
    regions = [
        RegionCreate(sha256=sha256, region=Region(label=b.label, box=b.box, source="hub"))
        for b in boxes
    ]
    async with db.transaction() as conn:
        await _record(conn, sha256, regions, error=error, clock=clock)
    return ScanOutcome(
        sha256=sha256,
        status="failed" if error else "scanned",
        regions=len(regions),
        cpu_ms=round(cpu_ms, 1),
    )


async def _record(
    conn: asyncpg.Connection,
    sha256: str,
    regions: list[RegionCreate],
    *,
    error: str | None,
    clock: Clock,
) -> None:
    """Store one scan's outcome unless a concurrent run stored one first."""
    current = await repository.lock_for_scan(conn, sha256=sha256)
    if current is None or current["scanned_at"] is not None:
        return
    scanned_by = MediaScanner.name
    await repository.record_scan(
        conn, sha256=sha256, regions=regions, scanned_by=scanned_by, error=error, at=clock()
    )
    labels = sorted({r.region.label for r in regions})
    await append_entry(
        conn,
        AuditEntry(
            actor="worker:media-scan",
            action="media.scan_failed" if error else "media.scanned",
            target=f"media:{sha256}",
            detail={"regions": len(regions), "labels": labels, "error": error or ""},
        ),
    )


async def unscanned(db: Database, *, limit: int = RECONCILE_BATCH) -> list[str]:
    """Images the hub has not scanned yet (oldest first)."""
    async with db.pool.acquire() as conn:
        return await repository.select_unscanned(conn, limit=limit)


def scan_job_id(redis: RedisStore, sha256: str) -> str:
    """The arq job id of an image's scan: the image's hash, namespaced by the hub's prefix."""
    return f"{redis.prefix}scan:{sha256}"


async def request_scans(redis: RedisStore, *, queue_name: str, shas: Iterable[str]) -> int:
    """Queue one scan job per image (job id `<prefix>scan:<sha256>`, so a second request while
    one is queued is a no-op, and hubs sharing a Redis never share a job); returns how many
    were queued. Redis trouble is logged, not raised: the reconcile cron finds every image
    still unscanned."""
    arq = ArqRedis(pool_or_conn=redis.client.connection_pool, default_queue_name=queue_name)
    queued = 0
    try:
        for sha256 in shas:
            job = await arq.enqueue_job(
                SCAN_FUNCTION, sha256, _job_id=scan_job_id(redis, sha256), _expires=JOB_EXPIRES
            )
            queued += job is not None
    except (RedisError, OSError) as exc:
        log.warning("media scan not queued; reconcile will", error=type(exc).__name__)
    return queued
