"""Bundle use cases on real PostgreSQL and Redis: upload, reject, activate, roll back."""

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from hub.policy.bundles import (
    Actor,
    BundleError,
    UploadRules,
    activate_bundle,
    activation_channel,
    bundle_status,
    list_bundles,
    load_active,
    report_process_revision,
    rollback,
    upload_bundle,
)
from hub.policy.bundles.archive import write_archive
from hub.policy.bundles.schemas import ActivationNotice
from hub.runtime import Services
from hub.settings import Settings
from tests.hub.policy.bundles.builders import (
    CRASHING_TEST,
    bundle_files,
    make_key,
    signed,
    signed_archive,
)

pytestmark = [pytest.mark.db, pytest.mark.redis]

KEY = make_key("admin-1")
ADMIN = Actor(name="user:alice", decision_id="dec-1")
RULES = UploadRules(keys=KEY.trusted, signing_required=True)


async def upload(services: Services, revision: str, **kwargs: object) -> str:
    archive = signed_archive(bundle_files(revision, **kwargs), KEY)
    result = await upload_bundle(services.db, archive, actor=ADMIN, rules=RULES)
    return result.bundle.revision


async def rows(settings: Settings, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def audit_actions(settings: Settings) -> list[tuple[str, str, str | None]]:
    found = await rows(settings, "SELECT action, target, decision_id FROM audit_log ORDER BY seq")
    return [(r["action"], r["target"], r["decision_id"]) for r in found]


async def test_a_signed_bundle_is_stored_with_its_test_report(
    services: Services, settings: Settings
) -> None:
    archive = signed_archive(bundle_files("r1"), KEY)
    result = await upload_bundle(services.db, archive, actor=ADMIN, rules=RULES)
    assert (result.created, result.signed_by) == (True, "admin-1")
    bundle = result.bundle
    assert (bundle.revision, bundle.status, bundle.uploaded_by) == ("r1", "uploaded", "user:alice")
    assert bundle.tests is not None
    assert (bundle.tests.passed, bundle.tests.failed) == (2, 0)
    stored = await rows(settings, "SELECT archive FROM policy_bundles")
    assert bytes(stored[0]["archive"]) == archive
    assert await audit_actions(settings) == [("policy.bundle.upload", "policy_bundle:r1", "dec-1")]


async def test_the_same_archive_again_is_a_no_op_and_other_content_a_conflict(
    services: Services,
) -> None:
    archive = signed_archive(bundle_files("r1"), KEY)
    await upload_bundle(services.db, archive, actor=ADMIN, rules=RULES)
    again = await upload_bundle(services.db, archive, actor=ADMIN, rules=RULES)
    assert again.created is False
    other = signed_archive(bundle_files("r1", roles=("operator",)), KEY)
    with pytest.raises(BundleError) as caught:
        await upload_bundle(services.db, other, actor=ADMIN, rules=RULES)
    assert (caught.value.code, caught.value.status) == ("bundle_revision_exists", 409)


async def test_a_failing_test_rejects_the_bundle_with_the_failing_names(
    services: Services, settings: Settings
) -> None:
    await upload(services, "r1")
    await activate_bundle(services.db, services.redis, "r1", actor=ADMIN)
    archive = signed_archive(bundle_files("r2", failing=True), KEY)
    with pytest.raises(BundleError) as caught:
        await upload_bundle(services.db, archive, actor=ADMIN, rules=RULES)
    error = caught.value
    assert (error.status, error.code) == (422, "bundle_tests_failed")
    failed = error.extra["failed_tests"]
    assert isinstance(failed, list)
    assert len(failed) == 1
    assert "test_everyone_is_allowed" in failed[0]
    by_revision = {b.revision: b for b in await list_bundles(services.db)}
    assert by_revision["r2"].status == "rejected"
    assert by_revision["r1"].status == "active"  # the active bundle stays
    with pytest.raises(BundleError) as refused:
        await activate_bundle(services.db, services.redis, "r2", actor=ADMIN)
    assert refused.value.code == "bundle_not_activatable"
    assert ("policy.bundle.reject", "policy_bundle:r2", "dec-1") in await audit_actions(settings)


async def test_a_rejected_revision_may_be_uploaded_again_once_fixed(services: Services) -> None:
    with pytest.raises(BundleError):
        await upload(services, "r1", failing=True)
    assert await upload(services, "r1") == "r1"
    assert [b.status for b in await list_bundles(services.db)] == ["uploaded"]


async def test_a_bundle_that_does_not_compile_is_rejected(services: Services) -> None:
    files = bundle_files("r1") | {"hub/broken.rego": b"package hub.broken\n\nallow if {"}
    with pytest.raises(BundleError) as caught:
        await upload_bundle(services.db, signed_archive(files, KEY), actor=ADMIN, rules=RULES)
    assert (caught.value.status, caught.value.code) == (422, "bundle_invalid")


async def test_a_bundle_that_crashes_the_compiler_is_rejected_and_the_hub_carries_on(
    services: Services,
) -> None:
    files = bundle_files("r1")
    files["hub/authz_test.rego"] += CRASHING_TEST.encode()
    with pytest.raises(BundleError) as caught:
        await upload_bundle(services.db, signed_archive(files, KEY), actor=ADMIN, rules=RULES)
    assert (caught.value.status, caught.value.code) == (422, "bundle_invalid")
    assert "crashed" in caught.value.detail
    assert [b.status for b in await list_bundles(services.db)] == ["rejected"]


async def test_unsigned_and_tampered_uploads_store_nothing_but_are_audited(
    services: Services, settings: Settings
) -> None:
    tampered = signed(bundle_files("r1"), KEY) | {"hub/data.json": b'{"allowed_roles": ["x"]}'}
    with pytest.raises(BundleError) as bad:
        await upload_bundle(services.db, write_archive(tampered), actor=ADMIN, rules=RULES)
    assert (bad.value.status, bad.value.code) == (400, "bundle_signature_invalid")
    unsigned = write_archive(bundle_files("r1"))
    with pytest.raises(BundleError) as caught:
        await upload_bundle(services.db, unsigned, actor=ADMIN, rules=RULES)
    assert caught.value.code == "bundle_unsigned"
    allowed = UploadRules(keys=KEY.trusted, signing_required=False)
    assert (await upload_bundle(services.db, unsigned, actor=ADMIN, rules=allowed)).created
    assert await rows(settings, "SELECT 1 FROM policy_bundles WHERE status = 'uploaded'")
    actions = [a for a, _, _ in await audit_actions(settings)]
    assert actions == ["policy.bundle.refuse", "policy.bundle.refuse", "policy.bundle.upload"]


async def test_activation_keeps_exactly_one_active_and_notifies(
    services: Services, settings: Settings
) -> None:
    for revision in ("r1", "r2"):
        await upload(services, revision)
    async with Subscription(settings, activation_channel(services.redis)) as notices:
        first = await activate_bundle(services.db, services.redis, "r1", actor=ADMIN)
        second = await activate_bundle(services.db, services.redis, "r2", actor=ADMIN)
        got = [await asyncio.wait_for(notices.get(), 2) for _ in range(2)]
    assert [n.revision for n in got] == ["r1", "r2"]
    assert (first.status, second.status, second.activated_by) == ("active", "active", "user:alice")
    states = {
        r["revision"]: r["status"] for r in await rows(settings, "SELECT * FROM policy_bundles")
    }
    assert states == {"r1": "retired", "r2": "active"}
    active = await load_active(services.db)
    assert active is not None
    assert (active[0], active[1]["hub/authz.rego"]) == ("r2", bundle_files()["hub/authz.rego"])


async def test_concurrent_activations_leave_one_active(
    services: Services, settings: Settings
) -> None:
    revisions = [f"r{i}" for i in range(5)]
    for revision in revisions:
        await upload(services, revision)
    await asyncio.gather(
        *(activate_bundle(services.db, services.redis, r, actor=ADMIN) for r in revisions)
    )
    active = await rows(settings, "SELECT revision FROM policy_bundles WHERE status = 'active'")
    assert len(active) == 1


async def test_activating_the_active_bundle_changes_nothing(
    services: Services, settings: Settings
) -> None:
    await upload(services, "r1")
    await activate_bundle(services.db, services.redis, "r1", actor=ADMIN)
    again = await activate_bundle(services.db, services.redis, "r1", actor=Actor(name="user:bob"))
    assert again.activated_by == "user:alice"
    actions = [a for a, _, _ in await audit_actions(settings)]
    assert actions.count("policy.bundle.activate") == 1


async def test_rollback_reactivates_an_earlier_bundle(
    services: Services, settings: Settings
) -> None:
    for revision in ("r1", "r2", "r3"):
        await upload(services, revision)
    await activate_bundle(services.db, services.redis, "r1", actor=ADMIN)
    await activate_bundle(services.db, services.redis, "r2", actor=ADMIN)
    back = await rollback(services.db, services.redis, to_revision="r1", actor=ADMIN)
    assert back.status == "active"
    states = {
        r["revision"]: r["status"] for r in await rows(settings, "SELECT * FROM policy_bundles")
    }
    assert states == {"r1": "active", "r2": "retired", "r3": "uploaded"}
    for target, code in (
        ("r3", "bundle_not_activatable"),
        ("r1", "bundle_not_activatable"),
        ("nope", "bundle_not_found"),
    ):
        with pytest.raises(BundleError) as caught:
            await rollback(services.db, services.redis, to_revision=target, actor=ADMIN)
        assert caught.value.code == code
    actions = [a for a, _, _ in await audit_actions(settings)]
    assert actions[-1] == "policy.bundle.rollback"


async def test_status_shows_the_active_bundle_and_live_processes(services: Services) -> None:
    status = await bundle_status(services.db, services.redis)
    assert (status.active_revision, status.processes, status.converged) == (None, [], False)
    # No bundle uploaded: every process on the same default bundle has converged.
    await report_process_revision(services.redis, "default-1", process="api@a:1")
    assert (await bundle_status(services.db, services.redis)).converged is True
    await report_process_revision(services.redis, "default-0", process="worker@b:2")
    assert (await bundle_status(services.db, services.redis)).converged is False
    await upload(services, "r1")
    await activate_bundle(services.db, services.redis, "r1", actor=ADMIN)
    now = datetime.now(UTC)
    await report_process_revision(services.redis, "r1", process="api@a:1")
    await report_process_revision(services.redis, "r0", process="worker@b:2")
    await report_process_revision(
        services.redis, "r0", process="api@gone:3", clock=lambda: now - timedelta(minutes=5)
    )
    status = await bundle_status(services.db, services.redis)
    assert (status.active_revision, status.activated_by) == ("r1", "user:alice")
    assert [(p.process, p.revision) for p in status.processes] == [
        ("api@a:1", "r1"),
        ("worker@b:2", "r0"),
    ]
    assert status.converged is False
    await report_process_revision(services.redis, "r1", process="worker@b:2")
    assert (await bundle_status(services.db, services.redis)).converged is True


class Subscription:
    """Collect activation notices from a channel on a client of our own."""

    def __init__(self, settings: Settings, channel: str) -> None:
        self.redis = Redis.from_url(settings.redis_url)
        self.channel = channel
        self.queue: asyncio.Queue[ActivationNotice] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "asyncio.Queue[ActivationNotice]":
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self.channel)
        self.task = asyncio.create_task(self._pump(pubsub))
        return self.queue

    async def _pump(self, pubsub: PubSub) -> None:
        async for message in pubsub.listen():
            if message["type"] == "message":
                self.queue.put_nowait(msgspec.json.decode(message["data"], type=ActivationNotice))

    async def __aexit__(self, *exc: object) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.redis.aclose()
