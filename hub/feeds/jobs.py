"""arq job of feeds: pruning audiences no reader uses any more (ADR 0015)."""

from datetime import timedelta
from typing import Any

import structlog

from hub.feeds.offers import prune_audiences
from hub.kit.clock import utcnow

log = structlog.get_logger("hub.feeds.jobs")


async def prune_audiences_job(ctx: dict[str, Any]) -> dict[str, object]:
    """Prune stale feed audiences and their offers, bounded per run; safe to run twice (row
    locks skip what another run holds)."""
    services = ctx["services"]
    idle = timedelta(days=services.settings.feeds_audience_idle_days)
    report = await prune_audiences(services.db, idle_before=utcnow() - idle)
    if report.offers or report.audiences:
        log.info(
            "feed audiences pruned",
            audiences=report.audiences,
            offers=report.offers,
            done=report.done,
        )
    return {"audiences": report.audiences, "offers": report.offers, "done": report.done}
