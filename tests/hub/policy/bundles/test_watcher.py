"""`BundleWatcher` on real PostgreSQL and Redis: start-up, notices, the safety-net re-check,
a second real process, and a bundle that will not load."""

import asyncio
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import msgspec
import pytest
from prometheus_client import CollectorRegistry

from hub.policy.bundle import LoadedBundle
from hub.policy.bundles import Actor, UploadRules, activate_bundle, read_process_revisions
from hub.policy.bundles import upload_bundle as upload
from hub.policy.bundles.watcher import BundleWatcher, WatcherMetrics
from hub.policy.engines import load_engine
from hub.policy.errors import PolicyLoadError
from hub.policy.ports import PolicyEngine
from hub.policy.schemas import DecisionRecord
from hub.policy.service import PolicyService
from hub.runtime import Services
from hub.settings import Settings
from tests.hub.policy.bundles.builders import (
    bundle_files,
    make_key,
    signed_archive,
    write_bundle_dir,
)
from tests.support import repo_root

pytestmark = [pytest.mark.db, pytest.mark.redis]

KEY = make_key("admin-1")
ADMIN = Actor(name="user:alice")
RULES = UploadRules(keys=KEY.trusted, signing_required=True)


class Discard:
    """A decision sink that keeps nothing."""

    async def record(self, record: DecisionRecord) -> None:
        del record


def new_policy() -> PolicyService:
    return PolicyService(None, sink=Discard(), eval_budget_ms=50)


@pytest.fixture
def default_dir(tmp_path: Path) -> Path:
    return write_bundle_dir(tmp_path / "default", bundle_files("default-1"))


@pytest.fixture
async def watchers(
    services: Services, default_dir: Path
) -> AsyncIterator[Callable[..., BundleWatcher]]:
    """Make watchers on the test's services; all are stopped afterwards."""
    made: list[BundleWatcher] = []

    def make(
        policy: PolicyService,
        *,
        folder: Path = default_dir,
        recheck_seconds: float = 3600.0,
        load: Callable[[LoadedBundle], PolicyEngine] = load_engine,
        metrics: WatcherMetrics | None = None,
    ) -> BundleWatcher:
        watcher = BundleWatcher(
            db=services.db,
            redis=services.redis,
            policy=policy,
            default_dir=folder,
            load=load,
            recheck_seconds=recheck_seconds,
            metrics=metrics,
        )
        made.append(watcher)
        return watcher

    yield make
    for watcher in made:
        await watcher.stop()


async def stored(services: Services, *revisions: str) -> None:
    for revision in revisions:
        await upload(
            services.db, signed_archive(bundle_files(revision), KEY), actor=ADMIN, rules=RULES
        )


async def eventually(check: Callable[[], bool], *, within: float) -> float:
    """Seconds until `check()` held; fails after `within`."""
    started = time.perf_counter()
    while not check():
        assert time.perf_counter() - started < within, "condition not met in time"
        await asyncio.sleep(0.01)
    return time.perf_counter() - started


async def test_start_loads_the_default_bundle_until_one_is_activated(
    services: Services, watchers: Callable[..., BundleWatcher]
) -> None:
    policy = new_policy()
    watcher = watchers(policy)
    await watcher.start()
    assert policy.revision == watcher.revision == "default-1"
    reported = await read_process_revisions(services.redis)
    assert [(p.process, p.revision) for p in reported] == [(watcher.process, "default-1")]


async def test_start_loads_the_active_bundle(
    services: Services, watchers: Callable[..., BundleWatcher]
) -> None:
    await stored(services, "r1")
    await activate_bundle(services.db, services.redis, "r1", actor=ADMIN)
    policy = new_policy()
    await watchers(policy).start()
    assert policy.revision == "r1"


async def test_the_shipped_policies_folder_loads_as_the_default(
    watchers: Callable[..., BundleWatcher],
) -> None:
    folder = repo_root() / "policies"
    expected = msgspec.json.decode((folder / ".manifest").read_bytes())["revision"]
    policy = new_policy()
    await watchers(policy, folder=folder).start()
    assert policy.revision == expected


async def test_a_watcher_in_this_process_follows_a_notice(
    services: Services, watchers: Callable[..., BundleWatcher]
) -> None:
    await stored(services, "r1")
    policy = new_policy()
    await watchers(policy).start()
    await activate_bundle(services.db, services.redis, "r1", actor=ADMIN)
    assert await eventually(lambda: policy.revision == "r1", within=1.0) < 1.0


async def test_a_missed_notice_is_caught_by_the_periodic_check(
    services: Services, settings: Settings, watchers: Callable[..., BundleWatcher]
) -> None:
    await stored(services, "r1")
    policy = new_policy()
    await watchers(policy, recheck_seconds=0.2).start()
    conn = await asyncpg.connect(settings.database_url)
    try:  # activate behind the hub's back: no notice is published
        await conn.execute(
            """UPDATE policy_bundles SET status = 'active', activated_at = now(),
               activated_by = 'sql' WHERE revision = 'r1'"""
        )
    finally:
        await conn.close()
    await eventually(lambda: policy.revision == "r1", within=2.0)


async def test_a_bundle_that_fails_to_load_leaves_the_previous_engine(
    services: Services, watchers: Callable[..., BundleWatcher]
) -> None:
    await stored(services, "r1", "bad")
    await activate_bundle(services.db, services.redis, "r1", actor=ADMIN)
    attempts: list[str] = []

    def load(bundle: LoadedBundle) -> PolicyEngine:
        attempts.append(bundle.revision)
        if bundle.revision == "bad":
            raise PolicyLoadError("this engine refuses the bundle")
        return load_engine(bundle)

    registry = CollectorRegistry()
    policy = new_policy()
    watcher = watchers(policy, load=load, metrics=WatcherMetrics(registry))
    await watcher.start()
    await activate_bundle(services.db, services.redis, "bad", actor=ADMIN)
    await eventually(lambda: attempts[-1] == "bad", within=1.0)
    assert await watcher.sync() is False  # not retried until the active revision changes
    assert (policy.revision, attempts) == ("r1", ["r1", "bad"])
    assert registry.get_sample_value("hub_policy_bundle_load_failures_total") == 1.0


async def test_a_second_process_swaps_within_a_second_of_activation(
    services: Services, settings: Settings, default_dir: Path
) -> None:
    await stored(services, "r1", "r2")
    await activate_bundle(services.db, services.redis, "r1", actor=ADMIN)
    env = {
        **os.environ,
        "HUB_DATABASE_URL": settings.database_url,
        "HUB_REDIS_URL": settings.redis_url,
        "HUB_REDIS_PREFIX": settings.redis_prefix,
        "HUB_LOG_LEVEL": "warning",
        "PYTHONPATH": str(repo_root()),
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("watch_child.py")),
        str(default_dir),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=env,
        cwd=repo_root(),
    )
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        ready = await asyncio.wait_for(child.stdout.readline(), 30)
        assert ready.decode().split() == ["ready", "r1"]
        started = time.perf_counter()
        await activate_bundle(services.db, services.redis, "r2", actor=ADMIN)
        swapped = await asyncio.wait_for(child.stdout.readline(), 1.0)
        assert swapped.decode().strip() == "r2"
        assert time.perf_counter() - started < 1.0
        processes = {p.process: p.revision for p in await read_process_revisions(services.redis)}
        assert f"child@{socket.gethostname()}:{child.pid}" in processes
    finally:
        child.stdin.close()
        try:
            await asyncio.wait_for(child.wait(), 10)
        except TimeoutError:
            child.kill()
            await child.wait()
