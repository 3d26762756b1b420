"""A second hub process for the watcher tests: a real `BundleWatcher` and `PolicyService`
that prints every revision it swaps to, one per line (`ready <rev>` first).

Settings come from the environment (HUB_DATABASE_URL, HUB_REDIS_URL, HUB_REDIS_PREFIX). The
periodic re-check is set far beyond the test's deadline, so only a Redis notice can explain
a swap within a second. It runs until its stdin closes.
"""

import asyncio
import sys
from pathlib import Path

from hub.kit.logging import configure_logging
from hub.policy.bundles.watcher import BundleWatcher
from hub.policy.schemas import DecisionRecord
from hub.policy.service import PolicyService
from hub.runtime import build_services, start_services, stop_services
from hub.settings import load_settings


class Discard:
    """A decision sink that keeps nothing."""

    async def record(self, record: DecisionRecord) -> None:
        del record


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(default_dir: str) -> None:
    settings = load_settings()
    configure_logging(settings)  # logs go to stderr; stdout carries revisions only
    services = build_services(settings)
    await start_services(services)
    policy = PolicyService(None, sink=Discard(), eval_budget_ms=50)
    watcher = BundleWatcher(
        db=services.db,
        redis=services.redis,
        policy=policy,
        default_dir=Path(default_dir),
        recheck_seconds=3600,
        role="child",
    )
    await watcher.start()
    say(f"ready {policy.revision}")
    closed = asyncio.ensure_future(asyncio.to_thread(sys.stdin.read))
    seen = policy.revision
    while not closed.done():
        if policy.revision != seen:
            seen = policy.revision
            say(str(seen))
        await asyncio.sleep(0.005)
    await watcher.stop()
    await stop_services(services)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
