"""One log line every few seconds about the worker's jobs, instead of arq's line per job.

A busy worker runs hundreds of short jobs a minute (an agency's batch, the audit sealer each
second); a line each drowns everything else. arq's own per-job lines are left at DEBUG.
"""

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import structlog

EVERY_SECONDS = 10.0


def log_summary(text: str) -> None:
    """Write the summary through the hub's logging (one `worker jobs` line)."""
    structlog.get_logger("hub.worker").info("worker jobs", summary=text)


def job_kind(job_id: str, *, prefix: str = "") -> str:
    """What a job is, from its id: `cron:seal_audit_job:…` -> seal_audit_job,
    `<prefix>deliver:<agency>` -> deliver; a random id says nothing (`other`)."""
    parts = job_id.removeprefix(prefix).split(":")
    if len(parts) == 1:
        return "other"
    return parts[1] if parts[0] == "cron" and len(parts) > 2 else parts[0]


def summary_text(counts: Mapping[str, int], seconds: float) -> str:
    """`42 jobs in 10 s: deliver 30, seal_audit_job 10, …` (most frequent first)."""
    total = sum(counts.values())
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items(), key=lambda i: -i[1]))
    return f"{total} jobs in {seconds:g} s" + (f": {kinds}" if kinds else "")


class JobSummary:
    """Counts jobs as they start (arq's `on_job_start`) and logs the counts per interval."""

    def __init__(
        self,
        *,
        prefix: str = "",
        every: float = EVERY_SECONDS,
        emit: Callable[[str], None] = log_summary,
    ) -> None:
        self.prefix = prefix  # the hub's Redis prefix, which namespaces its job ids
        self.every = every
        self.emit = emit
        self.counts: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None

    async def job_started(self, ctx: Mapping[str, Any]) -> None:
        """arq hook: count the job by its kind."""
        self.counts[job_kind(str(ctx.get("job_id", "")), prefix=self.prefix)] += 1

    def flush(self) -> str | None:
        """The line for the interval just ended (None when no job ran), and start afresh."""
        if not self.counts:
            return None
        text, self.counts = summary_text(self.counts, self.every), Counter()
        return text

    def start(self) -> None:
        """Log a line every interval until `stop`."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop logging (the last partial interval is dropped)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            text = self.flush()
            if text is not None:
                self.emit(text)
