"""A sweep killed with SIGKILL mid-way: the next one closes and audits it, then finishes."""

import asyncio
import os
import signal
import subprocess
import sys

import asyncpg
import pytest

from hub.audit import public_key_in, verify_log
from hub.retention.errors import SweepRunningError
from hub.retention.sweep import run_sweep
from hub.runtime import Services
from hub.settings import Settings
from tests.hub.retention.builders import activate_default_policy, add_event, days_ago, sweep_deps
from tests.support import repo_root


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_sweep_resumes_after_kill_9(services: Services, settings: Settings) -> None:
    activate_default_policy(services)
    async with services.db.pool.acquire() as conn:
        for _ in range(200):
            await add_event(conn, captured_at=days_ago(45))
    env = {
        "PATH": "/usr/bin:/bin",
        "HUB_DATABASE_URL": settings.database_url,
        "HUB_REDIS_URL": settings.redis_url,
        "HUB_REDIS_PREFIX": settings.redis_prefix,
        "HUB_SECRETS_DIR": settings.secrets_dir,
        "HUB_MEDIA_DIR": settings.media_dir,
        "HUB_LOG_JSON": "false",
        "HUB_ENVIRONMENT": "test",
        "HUB_POLICY_SIGNING_REQUIRED": "false",
        "HUB_RETENTION_BATCH_SIZE": "1",
        "HUB_RETENTION_BATCH_PAUSE_MS": "20",
    }
    process = subprocess.Popen(  # noqa: ASYNC220 - killed below, never waited on in the loop
        [sys.executable, "-m", "hub.cli.main", "retention", "run", "--quiet"],
        env=env,
        cwd=repo_root(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    conn = await asyncpg.connect(settings.database_url)
    try:
        for _ in range(600):
            left = await conn.fetchval("SELECT count(*) FROM detection_event")
            if left <= 150 or process.poll() is not None:
                break
            await asyncio.sleep(0.05)
        assert process.poll() is None, "the sweep ended before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        after_kill = await conn.fetchval("SELECT count(*) FROM detection_event")
        running = await conn.fetchval("SELECT count(*) FROM retention_run WHERE status = 'running'")
        assert 0 < after_kill < 200
        assert running == 1

        # PostgreSQL frees the killed session's advisory lock once its backend notices the
        # closed socket (it may still be finishing a statement): the next sweep waits for it.
        deadline = asyncio.get_running_loop().time() + 15
        while True:
            try:
                report = await run_sweep(sweep_deps(services, batch_size=50), dry_run=False)
                break
            except SweepRunningError:
                assert asyncio.get_running_loop().time() < deadline, "lock never released"
                await asyncio.sleep(0.1)

        assert report.interrupted_runs == 1
        assert await conn.fetchval("SELECT count(*) FROM detection_event") == 0
        audited = await conn.fetch(
            "SELECT detail->>'status' AS status, (detail->>'detection_event.rows')::int AS rows"
            " FROM audit_log WHERE action = 'retention.sweep' ORDER BY seq"
        )
    finally:
        await conn.close()
    assert [r["status"] for r in audited] == ["interrupted", "finished"]
    assert sum(r["rows"] for r in audited) == 200
    key = public_key_in(services.settings.secrets_dir)
    assert (await verify_log(services.db.pool, key=key)).ok
