"""Fixtures of delivery tests: receivers on loopback, cleaned arq job keys."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

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
    made (job ids carry our prefix: `<prefix>deliver:<agency>`)."""
    yield
    redis = Redis.from_url(settings.redis_url)
    try:
        pattern = f"arq:*:{settings.redis_prefix}*"
        keys = [key async for key in redis.scan_iter(match=pattern, count=500)]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()
