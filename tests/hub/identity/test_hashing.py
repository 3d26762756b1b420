"""Password hashing is capped: two argon2 runs at once per process, a short queue, then 503."""

import asyncio

import pytest

from hub.identity.oauth.errors import OAuthError
from hub.identity.oauth.service import authenticate_client
from hub.kit.offload import OffloadBusyError
from hub.runtime import Services

pytestmark = [pytest.mark.db, pytest.mark.redis]


async def test_a_flood_of_bogus_logins_is_capped_not_queued_without_end(
    services: Services,
) -> None:
    kit = services.identity
    limit = 2 + 8  # workers + queue of `password_hasher()`
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, kit.hasher.in_flight)
            await asyncio.sleep(0.005)

    watcher = asyncio.ensure_future(watch())
    outcomes = await asyncio.gather(
        *(authenticate_client(kit, f"nobody-{i}", "wrong") for i in range(30)),
        return_exceptions=True,
    )
    watcher.cancel()
    busy = [o for o in outcomes if isinstance(o, OffloadBusyError)]
    refused = [o for o in outcomes if isinstance(o, OAuthError)]
    assert len(busy) + len(refused) == 30
    assert peak <= limit
    assert len(refused) >= limit // 2  # the admitted ones were all checked, and refused
    assert busy
    assert busy[0].status == 503
