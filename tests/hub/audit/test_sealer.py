"""The sealer on real PostgreSQL: stored subtree hashes, one sealer at a time, checkpoints on
schedule, the witness (a file and a loopback URL), and the arq job in a burst worker."""

from datetime import timedelta
from pathlib import Path

import asyncpg
import msgspec
import pytest
from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker

from hub.audit import Checkpoint, merkle, public_key_in
from hub.audit.checkpoints import checkpoint_problem, read_witness_checkpoints
from hub.audit.repository import SEALER_LOCK
from hub.audit.witness import ADD_PATH, create_witness_app
from hub.kit.clock import utcnow
from hub.runtime import Services
from hub.settings import Settings
from hub.worker import worker_options
from tests.hub.audit.builders import append_many, fixed, sealer, witness_state
from tests.support import ThreadedServer

pytestmark = pytest.mark.db


async def leaf_hashes(services: Services) -> list[bytes]:
    async with services.db.pool.acquire() as conn:
        rows = await conn.fetch("SELECT leaf_hash FROM audit_log ORDER BY leaf_index")
    return [bytes(r["leaf_hash"]) for r in rows]


async def test_sealing_in_batches_stores_the_tiles_and_the_right_edge(services: Services) -> None:
    await append_many(services, 300)
    report = await sealer(services, batch=70).run(force_checkpoint=True)
    assert (report.sealed, report.tree_size) == (300, 300)
    leaves = await leaf_hashes(services)
    async with services.db.pool.acquire() as conn:
        nodes = await conn.fetch("SELECT height, idx, hash FROM audit_node")
        size, frontier = await conn.fetchrow("SELECT size, frontier FROM audit_tree")
    assert [(r["height"], r["idx"]) for r in nodes] == [(8, 0)]
    assert bytes(nodes[0]["hash"]) == merkle.root_of(leaves[:256])
    assert size == 300
    assert merkle.CompactRange(300, [bytes(h) for h in frontier]).root() == merkle.root_of(leaves)
    assert report.checkpoint is not None
    assert report.checkpoint.root_hash == merkle.root_of(leaves).hex()
    key = public_key_in(services.settings.secrets_dir)
    assert key is not None
    assert checkpoint_problem(report.checkpoint, public_pem=key.public_key) is None


async def test_a_second_sealer_steps_aside(services: Services, settings: Settings) -> None:
    await append_many(services, 3)
    other = await asyncpg.connect(settings.database_url)
    try:
        async with other.transaction():
            await other.execute("SELECT pg_advisory_xact_lock($1)", SEALER_LOCK)
            report = await sealer(services).run()
            assert report.busy
            assert report.sealed == 0
    finally:
        await other.close()
    assert (await sealer(services).run()).sealed == 3


async def test_checkpoints_are_signed_when_due_and_kept(services: Services) -> None:
    now = utcnow()
    await append_many(services, 2)
    first = await sealer(services, clock=fixed(now)).run()
    assert first.checkpoint is not None  # none yet: due at once
    await append_many(services, 1)
    soon = await sealer(services, clock=fixed(now + timedelta(seconds=59 * 60))).run()
    assert (soon.sealed, soon.checkpoint) == (1, None)  # sealed, but the hour is not over
    later = await sealer(services, clock=fixed(now + timedelta(hours=1))).run()
    assert later.checkpoint is not None
    assert later.checkpoint.tree_size == 3
    async with services.db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM audit_checkpoint") == 2


async def test_the_witness_file_gets_each_checkpoint_once(
    services: Services, tmp_path: Path
) -> None:
    witness = tmp_path / "deep" / "witness.jsonl"
    await append_many(services, 2)
    await sealer(services, witness=str(witness)).run(force_checkpoint=True)
    await sealer(services, witness=str(witness)).run(force_checkpoint=True)
    lines = witness.read_bytes().splitlines()
    sizes = [msgspec.json.decode(line, type=Checkpoint).tree_size for line in lines]
    assert sizes == [2, 2]


async def test_an_unreachable_witness_is_retried_on_the_next_run(
    services: Services, tmp_path: Path
) -> None:
    state = witness_state(services, tmp_path)
    server = ThreadedServer(create_witness_app(state))
    url = f"{server.url}{ADD_PATH}"
    await append_many(services, 1)
    down = await sealer(services, witness=url).run(force_checkpoint=True)
    assert down.witnessed == 0
    with server:
        up = await sealer(services, witness=url).run()
    assert up.witnessed == 1
    assert read_witness_checkpoints(state.path) == [down.checkpoint]


@pytest.mark.redis
@pytest.mark.commits
async def test_the_worker_job_seals_and_signs(services: Services, settings: Settings) -> None:
    await append_many(services, 4)
    options = worker_options(settings)
    options.pop("cron_jobs")  # run exactly the job we enqueue
    redis = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    job_id = f"{settings.redis_prefix}seal"
    try:
        job = await redis.enqueue_job(
            "seal_audit_job", _queue_name=options["queue_name"], _job_id=job_id
        )
        assert job is not None
        worker = Worker(**options, burst=True)
        await worker.main()
        await worker.close()
    finally:
        await redis.delete(f"arq:result:{job_id}", f"arq:job:{job_id}")
        await redis.aclose()
    async with services.db.pool.acquire() as conn:  # the job keeps no result: read the log
        assert await conn.fetchval("SELECT tree_size FROM audit_checkpoint") == 4
        assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE leaf_index >= 0") == 4
