"""arq job of the audit log: the sealer, run every second by one worker at a time."""

from typing import Any

import structlog

from hub.audit.sealer import Sealer

log = structlog.get_logger("hub.audit.jobs")
SEALER_KEY = "audit_sealer"


async def seal_audit_job(ctx: dict[str, Any]) -> dict[str, object]:
    """Seal committed audit entries, sign a checkpoint when due, feed the witness."""
    services = ctx["services"]
    if SEALER_KEY not in ctx:
        ctx[SEALER_KEY] = Sealer.from_settings(services.settings, services.db)
    report = await ctx[SEALER_KEY].run()
    if report.checkpoint is not None:
        log.info(
            "audit checkpoint signed",
            tree_size=report.checkpoint.tree_size,
            root=report.checkpoint.root_hash,
        )
    return {"sealed": report.sealed, "tree_size": report.tree_size, "busy": report.busy}
