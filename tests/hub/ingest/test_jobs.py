"""The partition job through a real arq worker in burst mode on real Redis."""

from datetime import UTC, datetime

import asyncpg
import pytest
from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker

from hub.ingest.partitions import month_start, partition_name
from hub.settings import Settings
from hub.worker import worker_options

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.commits]

_STRAY = datetime(2019, 3, 14, 9, 26, tzinfo=UTC)


async def test_ensure_partitions_job_runs_in_the_worker(settings: Settings) -> None:
    """The test removes the furthest month ahead and strands a row in the default partition
    first, so the job has work whatever today's date is and whatever ran before."""
    furthest = partition_name(
        month_start(datetime.now(UTC).date(), settings.partitions_ahead_months)
    )
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {furthest}")
        stray = await conn.fetchval(
            """INSERT INTO detection_event (node_id, event_id, captured_at, camera_id, classes,
                   max_confidence, content_sha256, payload)
               VALUES (gen_random_uuid(), gen_random_uuid(), $1, 'cam', '{person}', 0.9,
                       '\\x00', '{}') RETURNING event_id""",
            _STRAY,
        )
        result = await _run_job(settings)
        assert {furthest, "detection_event_y2019m03"} <= set(result["created"])
        assert (result["moved_rows"], result["default_rows"]) == (1, 0)
        where = await conn.fetchval(
            "SELECT tableoid::regclass::text FROM detection_event WHERE event_id = $1", stray
        )
        assert where == "detection_event_y2019m03"
    finally:
        await conn.execute("DROP TABLE IF EXISTS detection_event_y2019m03")
        await conn.close()


async def _run_job(settings: Settings) -> dict[str, object]:
    options = worker_options(settings)
    options.pop("cron_jobs")  # run exactly the job we enqueue
    redis = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    job_id = f"{settings.redis_prefix}t1"
    try:
        job = await redis.enqueue_job(
            "ensure_partitions_job", _queue_name=options["queue_name"], _job_id=job_id
        )
        assert job is not None
        worker = Worker(**options, burst=True)
        await worker.main()
        await worker.close()
        result: dict[str, object] = await job.result(timeout=5)
    finally:
        await redis.delete(f"arq:result:{job_id}", f"arq:job:{job_id}")
        await redis.aclose()
    return result
