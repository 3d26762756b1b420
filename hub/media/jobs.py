"""arq jobs of media: scan one image (job id `<prefix>scan:<sha256>`), and the reconcile cron that
queues every image still unscanned (after a lost Redis, a crash, or a missing model)."""

import logging
from pathlib import Path
from typing import Any

import msgspec
from arq import Retry

from hub.media.scan import ScannerUnavailableError
from hub.media.schemas import ScanOutcome
from hub.media.service import ScanKit, request_scans, scan_image, unscanned

# Stdlib logging (rendered like every other line, hub/kit/logging.py): its level is per
# logger, so a test can look at exactly what this module logs at which level.
log = logging.getLogger(__name__)
MAX_DEFER_SECONDS = 30


def _kit(ctx: dict[str, Any]) -> ScanKit:
    """The worker's scan kit (one scanner per worker process, built on first use)."""
    kit: ScanKit | None = ctx.get("media_scans")
    if kit is None:
        kit = ctx["media_scans"] = ScanKit(media_root=Path(ctx["services"].settings.media_dir))
    return kit


async def scan_media(ctx: dict[str, Any], sha256: str) -> dict[str, Any]:
    """Scan one stored image with the hub's models; a no-op once it is scanned."""
    services = ctx["services"]
    kit = _kit(ctx)
    if kit.busy:
        # Do not hold a worker slot while waiting for the scanner: deliveries share the
        # worker. Come back later, a little later each time, so a backlog does not churn.
        raise Retry(defer=min(MAX_DEFER_SECONDS, ctx.get("job_try", 1)))
    try:
        outcome = await scan_image(services.db, kit, sha256=sha256)
    except ScannerUnavailableError as exc:
        # The image stays unscanned (withheld from recipients that blur); reconcile retries.
        log.error("media scan impossible here: %s (%s)", sha256, exc)
        return {"sha256": sha256, "status": "unavailable"}
    result: dict[str, Any] = msgspec.to_builtins(outcome)
    # A failed scan is worth a warning; a scan that worked, or found nothing to do (a re-sent
    # job, an image already scanned), is counted in the worker's summary line (`scan N`,
    # hub/observability/job_summary.py) and logged only at DEBUG.
    level = logging.WARNING if outcome.status == "failed" else logging.DEBUG
    log.log(level, "media scan %s: %s (%d regions, %.1f ms CPU)", *_described(outcome))
    return result


def _described(outcome: ScanOutcome) -> tuple[str, str, int, float]:
    return outcome.status, outcome.sha256, outcome.regions, outcome.cpu_ms


async def reconcile_media_scans_job(ctx: dict[str, Any]) -> dict[str, int]:
    """Queue a scan for every image the hub has not scanned yet."""
    services = ctx["services"]
    shas = await unscanned(services.db)
    queued = await request_scans(
        services.redis, queue_name=services.delivery.queue.queue_name, shas=shas
    )
    if queued:  # images whose scan is still queued or running were not queued again
        log.info("unscanned media queued: %d of %d unscanned", queued, len(shas))
    return {"unscanned": len(shas), "queued": queued}
