"""Fixtures of delivery tests: receivers on loopback, cleaned arq job keys."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from hub.settings import Settings
from tests.hub.delivery.harness import Receivers


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[Receivers]:
    """REST, SOAP and XML demo receivers on one loopback server."""
    found = Receivers(tmp_path)
    found.start()
    yield found
    found.stop()


@pytest.fixture(autouse=True)
async def _drop_job_keys(settings: Settings) -> AsyncIterator[None]:
    """arq keeps job records outside our prefix (`arq:job:<id>`); remove the ones this test
    made (job id = delivery id), before the tables are truncated."""
    yield
    conn = await asyncpg.connect(settings.database_url)
    try:
        ids = [str(r["id"]) for r in await conn.fetch("SELECT id FROM delivery")]
    finally:
        await conn.close()
    redis = Redis.from_url(settings.redis_url)
    try:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            keys = [f"arq:{kind}:{i}" for i in chunk for kind in ("job", "in-progress", "retry")]
            await redis.delete(*keys)
    finally:
        await redis.aclose()
