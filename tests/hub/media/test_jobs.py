"""The scan and its reconcile cron through a real arq worker in burst mode on real Redis."""

import asyncio
import hashlib
import logging
from pathlib import Path

import pytest
from arq import Retry, create_pool
from arq.connections import RedisSettings
from arq.worker import Worker
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from hub.media import ScanKit, load_image
from hub.media.jobs import scan_media
from hub.media.service import scan_job_id
from hub.runtime import Services
from hub.settings import Settings
from hub.worker import worker_options
from tests.hub.feeds.builders import upload_media
from tests.hub.media.builders import unique_frame
from tests.support import EdgeNode

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.commits, pytest.mark.slow]


async def _burst(settings: Settings, *functions: str) -> None:
    """Run a burst worker until the queue is empty; with `functions`, enqueue those first."""
    options = worker_options(settings)
    options.pop("cron_jobs")  # run exactly what is queued
    pool = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    try:
        for name in functions:
            await pool.enqueue_job(name, _queue_name=options["queue_name"])
    finally:
        await pool.aclose()
    worker = Worker(**options, burst=True)
    try:
        await worker.main()
    finally:
        await worker.close()


async def test_an_upload_queues_its_scan_and_the_worker_runs_it(
    client: AsyncTestClient, services: Services, edge_node: EdgeNode, settings: Settings
) -> None:
    frame = unique_frame()
    sha = hashlib.sha256(frame).hexdigest()
    await upload_media(client, edge_node, frame, sha)
    redis = Redis.from_url(settings.redis_url)
    try:
        queued = await redis.zrange(f"{settings.redis_prefix}arq:queue", 0, -1)
        assert scan_job_id(services.redis, sha).encode() in queued
    finally:
        await redis.aclose()
    await _burst(settings)
    image = await load_image(services.db, sha256=sha)
    assert image is not None
    assert image.scanned
    assert {r.label for r in image.regions if r.source == "hub"} == {"face", "plate"}


async def test_reconcile_scans_what_lost_its_job(
    client: AsyncTestClient, services: Services, edge_node: EdgeNode, settings: Settings
) -> None:
    frame = unique_frame()
    sha = hashlib.sha256(frame).hexdigest()
    await upload_media(client, edge_node, frame, sha)
    redis = Redis.from_url(settings.redis_url)
    try:  # Redis lost the job (a flush, a failover): only PostgreSQL knows the image
        job = scan_job_id(services.redis, sha)
        await redis.delete(f"arq:job:{job}")
        await redis.zrem(f"{settings.redis_prefix}arq:queue", job)
    finally:
        await redis.aclose()
    await _burst(settings, "reconcile_media_scans_job")
    image = await load_image(services.db, sha256=sha)
    assert image is not None
    assert image.scanned


async def test_a_scan_defers_itself_while_the_scanner_is_busy(
    services: Services, settings: Settings
) -> None:
    """Waiting for the scanner would hold a worker slot that deliveries need."""
    kit = ScanKit(media_root=Path(settings.media_dir))
    ctx = {"services": services, "media_scans": kit, "job_try": 3}
    started, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with kit.slot():
            started.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await started.wait()
    try:
        assert kit.busy
        with pytest.raises(Retry) as deferred:
            await scan_media(ctx, "f" * 64)
        assert deferred.value.defer_score == 3000  # job_try seconds, in ms
    finally:
        release.set()
        await holder
    assert not kit.busy
    assert (await scan_media(ctx, "f" * 64))["status"] == "missing"


async def test_scans_log_below_info_and_a_failed_scan_warns(
    client: AsyncTestClient,
    services: Services,
    edge_node: EdgeNode,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A line per image drowned `make run`; the worker's summary line counts scan jobs
    instead, so neither a scan nor a re-sent one logs at INFO."""
    caplog.set_level(logging.DEBUG, logger="hub.media.jobs")
    frame, garbage = unique_frame(), b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    shas = [hashlib.sha256(data).hexdigest() for data in (frame, garbage)]
    await upload_media(client, edge_node, frame, shas[0])
    await upload_media(client, edge_node, garbage, shas[1])
    ctx = {"services": services, "media_scans": ScanKit(media_root=Path(settings.media_dir))}
    first = await scan_media(ctx, shas[0])
    again = await scan_media(ctx, shas[0])  # a re-sent job: nothing to do
    failed = await scan_media(ctx, shas[1])

    assert [first["status"], again["status"], failed["status"]] == ["scanned", "skipped", "failed"]
    lines = [(r.levelno, r.getMessage().split(":")[0]) for r in caplog.records]
    assert lines == [
        (logging.DEBUG, "media scan scanned"),
        (logging.DEBUG, "media scan skipped"),
        (logging.WARNING, "media scan failed"),
    ]
