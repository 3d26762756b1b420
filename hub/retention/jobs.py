"""arq jobs of retention: the scheduled sweep."""

from typing import Any

import structlog

from hub.retention.errors import SweepRunningError
from hub.retention.service import sweep, sweep_deps

log = structlog.get_logger("hub.retention.jobs")


async def retention_sweep_job(ctx: dict[str, Any]) -> dict[str, object]:
    """Delete what policy says has expired (the advisory lock keeps it to one at a time)."""
    services = ctx["services"]
    deps = sweep_deps(services.db, services.policy, services.retention, actor="worker:retention")
    try:
        report = await sweep(deps)
    except SweepRunningError:
        log.info("retention sweep already running elsewhere")
        return {"skipped": True}
    counts = {c.data_class: c.rows for c in report.classes}
    log.info("retention sweep finished", run_id=report.run_id, **counts)
    return {"run_id": report.run_id, **counts}
