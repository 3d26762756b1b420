"""The partition job through a real arq worker in burst mode on real Redis."""

import asyncpg
import pytest
from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker

from hub.settings import Settings
from hub.worker import worker_options

pytestmark = [pytest.mark.db, pytest.mark.redis]


async def test_ensure_partitions_job_runs_in_the_worker(settings: Settings) -> None:
    options = worker_options(settings)
    options.pop("cron_jobs")  # run exactly the job we enqueue
    redis = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    try:
        job = await redis.enqueue_job(
            "ensure_partitions_job",
            _queue_name=options["queue_name"],
            _job_id=f"{settings.redis_prefix}t1",
        )
        assert job is not None
        worker = Worker(**options, burst=True)
        await worker.main()
        await worker.close()
        result = await job.result(timeout=5)
    finally:
        await redis.delete(
            f"arq:result:{settings.redis_prefix}t1", f"arq:job:{settings.redis_prefix}t1"
        )
        await redis.aclose()
    assert result["created"] == []  # `hub migrate` already created this month and the next ones
    conn = await asyncpg.connect(settings.database_url)
    try:
        parts = await conn.fetchval(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'detection_event'::regclass"
        )
    finally:
        await conn.close()
    assert parts == settings.partitions_ahead_months + 2  # this month, N ahead, default
