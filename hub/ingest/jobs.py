"""arq jobs of ingest: keep monthly partitions ahead of time."""

from typing import Any

import structlog

from hub.ingest.partitions import ensure_partitions
from hub.kit.clock import utcnow
from hub.runtime import Services

log = structlog.get_logger("hub.ingest.jobs")


async def ensure_partitions_job(ctx: dict[str, Any]) -> dict[str, object]:
    """Create the coming months' partitions and re-home rows stuck in the default partition."""
    services: Services = ctx["services"]
    async with services.db.pool.acquire() as conn:
        report = await ensure_partitions(
            conn, now=utcnow(), ahead=services.settings.partitions_ahead_months
        )
    if report.default_rows:
        log.warning("default partition is not empty", rows=report.default_rows)
    log.info("partitions ensured", created=report.created, moved_rows=report.moved_rows)
    return {
        "created": report.created,
        "moved_rows": report.moved_rows,
        "default_rows": report.default_rows,
    }
