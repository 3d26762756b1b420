"""A policy bundle swap under load: while batches are ingested and deliveries run, another
bundle revision is activated. Every decision names exactly one of the two revisions, each
process switches once (never back), no request pairs an authz decision of one revision with
an ingest decision of the other, and nothing failed with a 5xx."""

import asyncio
import itertools
import secrets
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from hub.policy.bundles import Actor, UploadRules, activate_bundle, upload_bundle
from hub.runtime import Services
from hub.settings import Settings
from tests.faults.kit import FaultyReceivers, register_with
from tests.hub.delivery.conftest import _drop_job_keys  # noqa: F401 - autouse fixture
from tests.hub.delivery.harness import all_settled, ingest, quick, running_worker, wait_until
from tests.hub.ingest.builders import event
from tests.hub.policy.bundles.builders import make_key, signed_archive
from tests.support import EdgeNode, repo_root

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.commits, pytest.mark.slow]

KEY = make_key("swap-admin")
AUTHZ = "hub/authz/decision"
INGEST = "hub/ingest/decision"


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[FaultyReceivers]:
    found = FaultyReceivers(tmp_path)
    found.start()
    yield found
    found.stop()


def default_bundle(revision: str) -> tuple[str, dict[str, bytes]]:
    """The default bundle's files under a new revision; and the default revision."""
    folder = repo_root() / "policies"
    files = {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.suffix in {".rego", ".json"} and "__pycache__" not in path.parts
    }
    manifest = msgspec.json.decode((folder / ".manifest").read_bytes())
    files[".manifest"] = msgspec.json.encode({**manifest, "revision": revision})
    return manifest["revision"], files


@pytest.mark.timeout(180)
async def test_bundle_swap_under_load_mixes_no_revisions(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: FaultyReceivers,
) -> None:
    await register_with(services, receivers)
    new = f"swap-{secrets.token_hex(3)}"
    old, files = default_bundle(new)
    uploaded = await upload_bundle(
        services.db,
        signed_archive(files, KEY),
        actor=Actor(name="test"),
        rules=UploadRules(keys=KEY.trusted, signing_required=True),
    )
    assert uploaded.bundle.status == "uploaded", uploaded
    posted = 0
    stop = asyncio.Event()

    async def load() -> None:
        nonlocal posted
        while not stop.is_set():
            cameras = ("demo-cam-1", "demo-cam-2")
            events = [event(camera_id=c, model_name="demo-synthetic") for c in cameras * 3]
            await ingest(client, edge_node, events)  # asserts 200 and every event accepted
            posted += len(events)
            await asyncio.sleep(0.12)  # under the node's rate limit (600 requests a minute)

    async with running_worker(quick(settings)):
        task = asyncio.create_task(load())
        await asyncio.sleep(1.5)
        await activate_bundle(services.db, services.redis, new, actor=Actor(name="test"))
        await asyncio.sleep(2.5)
        stop.set()
        await task
        # Every event goes to three agencies (delivered or withheld by release).
        await wait_until(lambda: all_settled(settings, posted * 3), within=90, what="settled")

    # The app's decision log flushed on shutdown (the client fixture is still open: wait).
    await wait_until(
        lambda: decisions_logged(settings, INGEST, posted // 6), within=10, what="decision log"
    )
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch(
            "SELECT decision_id, entrypoint, revision FROM policy_decisions ORDER BY decision_id"
        )
        failed = await conn.fetchval("SELECT count(*) FROM delivery WHERE status = 'dead'")
    finally:
        await conn.close()
    assert failed == 0
    assert {r["revision"] for r in rows} == {old, new}
    by_entrypoint: dict[str, list[str]] = {}
    for r in rows:
        by_entrypoint.setdefault(r["entrypoint"], []).append(r["revision"])
    for entrypoint, revisions in by_entrypoint.items():
        switch = revisions.index(new) if new in revisions else len(revisions)
        assert set(revisions[switch:]) <= {new}, f"{entrypoint} went back to {old}"
    # Requests are sequential: authz then ingest, pair by pair.
    api = [r for r in rows if r["entrypoint"] in (AUTHZ, INGEST)]
    pairs = [(a, b) for a, b in itertools.pairwise(api) if a["entrypoint"] == AUTHZ]
    pairs = [(a, b) for a, b in pairs if b["entrypoint"] == INGEST]
    assert len(pairs) == posted // 6
    mixed = [(a["revision"], b["revision"]) for a, b in pairs if a["revision"] != b["revision"]]
    assert not mixed, mixed
    assert new in by_entrypoint[INGEST]
    assert old in by_entrypoint[INGEST]


async def decisions_logged(settings: Settings, entrypoint: str, at_least: int) -> bool:
    conn = await asyncpg.connect(settings.database_url)
    try:
        found = await conn.fetchval(
            "SELECT count(*) FROM policy_decisions WHERE entrypoint = $1", entrypoint
        )
    finally:
        await conn.close()
    return int(found) >= at_least
