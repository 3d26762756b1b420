"""The arq worker: clients in `ctx`, jobs and cron jobs from each domain."""

from typing import Any

from arq import cron
from arq.connections import RedisSettings
from arq.worker import run_worker

from hub.ingest.jobs import ensure_partitions_job
from hub.kit.logging import configure_logging
from hub.runtime import build_services, start_policy, start_services, stop_policy, stop_services
from hub.settings import Settings


def queue_name(settings: Settings) -> str:
    """The arq queue, namespaced like every other key of this hub."""
    return f"{settings.redis_prefix}arq:queue"


def worker_options(settings: Settings) -> dict[str, Any]:
    """arq worker options for these settings (also used by tests to run a burst worker)."""

    async def on_startup(ctx: dict[str, Any]) -> None:
        services = build_services(settings)
        await start_services(services)
        ctx["services"] = services
        ctx["policy_watcher"] = await start_policy(services, role="worker")

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        if "policy_watcher" in ctx:
            await stop_policy(ctx["services"], ctx["policy_watcher"])
        if "services" in ctx:
            await stop_services(ctx["services"])

    return {
        "functions": [ensure_partitions_job],
        "cron_jobs": [
            cron(ensure_partitions_job, hour={0, 12}, minute=5, run_at_startup=True, unique=True),
        ],
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "queue_name": queue_name(settings),
        "max_jobs": 20,
        "job_timeout": 300,
        "keep_result": 3600,
    }


class WorkerSettings:
    """Marker class for arq's `run_worker`; the options come from `worker_options`."""


def run(settings: Settings) -> None:
    """Run the worker until stopped (blocking)."""
    configure_logging(settings)
    run_worker(WorkerSettings, **worker_options(settings))  # type: ignore[arg-type]
