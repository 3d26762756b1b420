"""The arq worker: clients in `ctx`, jobs and cron jobs from each domain."""

import asyncio
from typing import Any

import uvloop
from arq import cron, func
from arq.worker import Worker, create_worker

from hub.audit.jobs import seal_audit_job
from hub.delivery.jobs import deliver_agency, reconcile_deliveries_job
from hub.delivery.kit import queue_name
from hub.delivery.queue import DELIVER_FUNCTION
from hub.feeds.jobs import prune_audiences_job
from hub.ingest.jobs import ensure_partitions_job
from hub.kit.logging import configure_logging
from hub.kit.redis import arq_redis_pool, arq_redis_settings
from hub.media.jobs import reconcile_media_scans_job, scan_media
from hub.media.service import SCAN_FUNCTION
from hub.observability import JobSummary, ObservabilityKit, prepare_process
from hub.observability.jobs import refresh_gauges_job
from hub.retention.jobs import retention_sweep_job
from hub.runtime import build_services, start_policy, start_services, stop_policy, stop_services
from hub.settings import Settings


def worker_options(settings: Settings) -> dict[str, Any]:
    """arq worker options for these settings (also used by tests to run a burst worker)."""

    jobs = JobSummary(prefix=settings.redis_prefix)

    async def on_startup(ctx: dict[str, Any]) -> None:
        jobs.start()
        observability = ObservabilityKit(settings, service="hub-worker")
        observability.start_process(decision_log_capacity=settings.decision_log_buffer)
        ctx["observability"] = observability
        services = build_services(settings)
        await start_services(services)
        ctx["services"] = services
        ctx["policy_watcher"] = await start_policy(services, role="worker")
        ctx["delivery_deps"] = services.delivery.worker_deps(
            services.db, services.redis, services.policy
        )

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        await jobs.stop()
        if "policy_watcher" in ctx:
            await stop_policy(ctx["services"], ctx["policy_watcher"])
        if "services" in ctx:
            await stop_services(ctx["services"])
        if "observability" in ctx:
            await ctx["observability"].stop()

    timeout = settings.delivery_job_timeout_seconds
    maintenance = settings.worker_maintenance_timeout_seconds
    return {
        "functions": [
            ensure_partitions_job,
            # One job per agency with work; our ledger counts attempts, arq's try counter only
            # counts an agency timer's re-arms, hence the generous max_tries. No arq result is
            # kept, so the agency can be woken again as soon as a job returns.
            func(
                deliver_agency,
                name=DELIVER_FUNCTION,
                timeout=timeout,
                max_tries=100_000,
                keep_result=0,
            ),
            func(reconcile_deliveries_job, timeout=maintenance, keep_result=0),
            func(refresh_gauges_job, timeout=maintenance, keep_result=0),
            func(prune_audiences_job, timeout=maintenance, keep_result=0),
            func(retention_sweep_job, timeout=maintenance, keep_result=0),
            func(seal_audit_job, timeout=maintenance, keep_result=0),
            # The hub's scan of one image (job id <prefix>scan:<sha256>); it defers itself (Retry)
            # while the scanner is busy, hence many tries; reconcile queues whatever is left.
            func(
                scan_media, name=SCAN_FUNCTION, timeout=maintenance, max_tries=1000, keep_result=0
            ),
            func(reconcile_media_scans_job, timeout=maintenance, keep_result=0),
        ],
        "cron_jobs": [
            cron(ensure_partitions_job, hour={0, 12}, minute=5, run_at_startup=True, unique=True),
            # Every 5 seconds; unique, so several workers do not all scan at once.
            cron(
                reconcile_deliveries_job,
                second=set(range(0, 60, 5)),
                run_at_startup=True,
                unique=True,
                timeout=maintenance,
                keep_result=0,
            ),
            # Dead letters and breaker states for /metrics, every 15 seconds.
            cron(
                refresh_gauges_job,
                second={0, 15, 30, 45},
                run_at_startup=True,
                unique=True,
                timeout=maintenance,
                keep_result=0,
            ),
            # Hourly; each run is bounded by the timeout and the next one resumes where the
            # data says (committed batches stay done), under an advisory lock.
            cron(
                retention_sweep_job,
                minute=17,
                unique=True,
                timeout=maintenance,
                keep_result=0,
            ),
            # Hourly; bounded per run, and a run that stopped at its bound resumes next hour.
            cron(
                prune_audiences_job,
                minute=47,
                unique=True,
                timeout=maintenance,
                keep_result=0,
            ),
            # Images not yet scanned (uploads whose job was lost), every minute.
            cron(
                reconcile_media_scans_job,
                second=40,
                run_at_startup=True,
                unique=True,
                timeout=maintenance,
                keep_result=0,
            ),
            # The audit sealer, every second; unique, and its advisory lock keeps it single.
            cron(
                seal_audit_job,
                second=set(range(60)),
                run_at_startup=True,
                unique=True,
                timeout=maintenance,
                keep_result=0,
            ),
        ],
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "on_job_start": jobs.job_started,
        "redis_settings": arq_redis_settings(settings),
        "queue_name": queue_name(settings),
        "max_jobs": settings.worker_max_jobs,
        # New deliveries should start within tens of milliseconds (p99 target is 1 s).
        "poll_delay": 0.05,
        "job_timeout": maintenance,
        # On SIGTERM/SIGINT stop taking jobs and let running deliveries finish (they are
        # short) instead of cancelling them mid-call.
        "job_completion_wait": min(timeout, 15),
        "keep_result": 3600,
    }


class WorkerSettings:
    """Marker class for arq's `run_worker`; the options come from `worker_options`."""


def run(settings: Settings) -> None:
    """Run the worker until stopped (blocking)."""
    prepare_process(settings)  # metrics folder before any collector exists
    configure_logging(settings)
    # uvloop: the loop's own cost (ready queue, timers, socket reads) is most of what a
    # kept-alive delivery spends outside our code; arq takes the loop it finds (ADR 0008).
    asyncio.set_event_loop(uvloop.new_event_loop())
    pool = arq_redis_pool(settings)  # Sentinel: retries across a failover
    worker = create_worker(WorkerSettings, **worker_options(settings), redis_pool=pool)  # type: ignore[arg-type]
    worker.on_stop = lambda _signal: keep_cancelling(worker)
    worker.run()


# How often a stopping worker cancels its main task again while that task is still running.
RECANCEL_SECONDS = 1.0


def keep_cancelling(worker: Worker) -> None:
    """After a stop signal (arq calls this once it has cancelled its main task), cancel the
    main task again every second until it ends. arq cancels it once; a cancellation the
    Redis client swallows (redis-py #2028 and #2551, in its connection and timeout code)
    leaves the worker running: seen in the cluster rig's rolling upgrade after a Sentinel
    failover, the old worker still up 60 s after SIGTERM and gone soon after a second one."""

    async def again() -> None:
        main = worker.main_task
        while main is not None and not main.done():
            await asyncio.sleep(RECANCEL_SECONDS)
            if not main.done():
                main.cancel()

    task = worker.loop.create_task(again())
    _RECANCELLING.add(task)  # kept from the GC while it runs
    task.add_done_callback(_RECANCELLING.discard)


_RECANCELLING: set["asyncio.Task[None]"] = set()
