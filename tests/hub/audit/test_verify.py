"""`verify_log` on real PostgreSQL against signed checkpoints: edits, deletions, a cut tail
(even of one entry), a rewritten tree, deleted checkpoints (caught by the witness's copy), a
log rewritten and sealed again (caught by the earlier checkpoints the witness holds), forged
checkpoints, and pruning that leaves what remains verifiable."""

import contextlib
from datetime import timedelta
from pathlib import Path

import pytest

from hub.audit import (
    AuditEntry,
    Checkpoint,
    LogReport,
    append_entry,
    consistency_proof,
    inclusion_proof,
    prune_entries,
    public_key_in,
    verify_log,
)
from hub.audit.checkpoints import read_witness_checkpoints
from hub.audit.merkle import verify_inclusion
from hub.audit.repository import iter_sealed, stored_entry
from hub.audit.rules import entry_leaf
from hub.kit.clock import utcnow
from hub.kit.errors import NotFoundError
from hub.runtime import Services
from tests.hub.audit.builders import append_many, execute, fixed, rewrite_log, sealer

pytestmark = pytest.mark.db


async def verify(services: Services, *trusted: Checkpoint) -> LogReport:
    key = public_key_in(services.settings.secrets_dir)
    return await verify_log(services.db.pool, key=key, trusted=trusted)


async def sealed_log(services: Services, n: int) -> list[int]:
    seqs = await append_many(services, n)
    await sealer(services).run(force_checkpoint=True)
    return seqs


async def test_an_untouched_log_verifies_against_its_checkpoint(services: Services) -> None:
    await sealed_log(services, 5)
    await append_many(services, 2)  # not sealed yet: counted, not a problem
    report = await verify(services)
    assert (report.ok, report.entries, report.checkpoint_size, report.unsealed) == (
        True,
        5,
        5,
        2,
    )


async def test_an_edited_entry_is_named(services: Services) -> None:
    seqs = await sealed_log(services, 5)
    await execute(services, "UPDATE audit_log SET target = 'forged' WHERE seq = $1", seqs[2])
    report = await verify(services)
    assert (report.ok, report.broken_seq, report.broken_index) == (False, seqs[2], 2)
    assert "altered" in (report.problem or "")


async def test_a_deleted_entry_in_the_middle_is_named(services: Services) -> None:
    seqs = await sealed_log(services, 5)
    await execute(services, "DELETE FROM audit_log WHERE seq = $1", seqs[1])
    report = await verify(services)
    assert (report.ok, report.broken_index) == (False, 1)
    assert "missing" in (report.problem or "")


async def test_deleting_even_the_last_entry_is_detected(services: Services) -> None:
    seqs = await sealed_log(services, 5)
    # Cover the traces too: delete the entry and rewind the tree state to 4 entries.
    await execute(services, "DELETE FROM audit_log WHERE seq = $1", seqs[-1])
    await execute(services, "UPDATE audit_tree SET size = 4, frontier = ARRAY[frontier[1]]")
    report = await verify(services)
    assert not report.ok
    assert "the last 1 were deleted" in (report.problem or "")


async def test_a_rewritten_tree_does_not_give_the_signed_root(services: Services) -> None:
    seqs = await sealed_log(services, 4)
    # A forger who also recomputes the leaf hash cannot recompute the signature.
    await execute(services, "UPDATE audit_log SET target = 'forged' WHERE seq = $1", seqs[0])
    async with services.db.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT seq, at, actor, action, target, detail::text AS detail, decision_id,"
            " trace_id, leaf_index, leaf_hash FROM audit_log WHERE seq = $1",
            seqs[0],
        )
        leaf = entry_leaf(stored_entry(row))
        await conn.execute("UPDATE audit_log SET leaf_hash = $1 WHERE seq = $2", leaf, seqs[0])
    report = await verify(services)
    assert not report.ok
    assert "rewritten" in (report.problem or "")


async def test_the_root_is_checked_at_the_checkpoints_size_inside_a_batch(
    services: Services,
) -> None:
    """Entries sealed after the checkpoint arrive in the same batch as those it covers: the
    walk still stops at the signed size to compare roots, then folds the rest in."""
    seqs = await sealed_log(services, 4)
    await append_many(services, 3)
    await sealer(services).run()  # sealed, but no new checkpoint within the hour
    assert (await verify(services)).entries == 7
    async with services.db.pool.acquire() as conn:
        await conn.execute("UPDATE audit_log SET target = 'forged' WHERE seq = $1", seqs[1])
        row = await conn.fetchrow(
            "SELECT seq, at, actor, action, target, detail::text AS detail, decision_id,"
            " trace_id, leaf_index, leaf_hash FROM audit_log WHERE seq = $1",
            seqs[1],
        )
        await conn.execute(
            "UPDATE audit_log SET leaf_hash = $1 WHERE seq = $2",
            entry_leaf(stored_entry(row)),
            seqs[1],
        )
    report = await verify(services)
    assert (report.ok, report.entries) == (False, 4)
    assert "rewritten" in (report.problem or "")


async def test_the_witness_copy_catches_a_tail_cut_with_its_checkpoints(
    services: Services, tmp_path: Path
) -> None:
    witness = tmp_path / "witness.jsonl"
    seqs = await append_many(services, 6)
    report = await sealer(services, witness=str(witness)).run(force_checkpoint=True)
    assert report.witnessed == 1
    trusted = read_witness_checkpoints(witness)[-1]
    assert trusted.tree_size == 6
    await execute(services, "DELETE FROM audit_log WHERE seq = ANY($1::bigint[])", seqs[-2:])
    await execute(services, "DELETE FROM audit_checkpoint")
    await execute(services, "UPDATE audit_tree SET size = 4, frontier = ARRAY[frontier[1]]")
    assert (await verify(services)).ok  # the database alone no longer knows
    caught = await verify(services, trusted)
    assert not caught.ok
    assert "the last 2 were deleted" in (caught.problem or "")


async def test_a_log_rewritten_and_sealed_again_shows_against_what_the_witness_held_before(
    services: Services, tmp_path: Path
) -> None:
    witness = tmp_path / "witness.jsonl"
    seqs = await append_many(services, 6)
    assert (await sealer(services, witness=str(witness)).run(force_checkpoint=True)).witnessed
    # The log rewritten and sealed again: the hub then signs, and hands the witness,
    # checkpoints of the rewritten log, which verify against themselves.
    await rewrite_log(services, seqs[1])
    await append_many(services, 2)
    later = sealer(services, witness=str(witness), clock=fixed(utcnow() + timedelta(minutes=1)))
    assert (await later.run(force_checkpoint=True)).witnessed
    held = read_witness_checkpoints(witness)
    assert [c.tree_size for c in held] == [6, 8]
    assert (await verify(services)).ok
    assert (await verify(services, held[-1])).ok  # the newest the witness holds: rewritten too
    caught = await verify(services, *held)
    assert not caught.ok
    assert "the root signed for 6 entries" in (caught.problem or "")
    assert caught.checkpoints_matched == 0


async def test_every_checkpoint_a_witness_holds_is_matched_on_an_untouched_log(
    services: Services, tmp_path: Path
) -> None:
    witness = tmp_path / "witness.jsonl"
    for n in (3, 1, 4):  # three checkpoints of 3, 4 and 8 entries
        await append_many(services, n)
        await sealer(services, witness=str(witness)).run(force_checkpoint=True)
    held = read_witness_checkpoints(witness)
    report = await verify(services, *reversed(held))  # in any order
    assert (report.ok, report.checkpoint_size, report.checkpoints_matched) == (True, 8, 3)


async def test_a_forged_checkpoint_is_refused(services: Services) -> None:
    await sealed_log(services, 3)
    await execute(services, "UPDATE audit_checkpoint SET tree_size = 2")
    report = await verify(services)
    assert not report.ok
    assert "do not match its signed note" in (report.problem or "")
    await execute(services, "UPDATE audit_checkpoint SET note = replace(note, E'\n3\n', E'\n2\n')")
    report = await verify(services)
    assert not report.ok
    assert "not signed by the checkpoint key" in (report.problem or "")


async def test_pruned_entries_leave_a_log_that_still_verifies_and_proves(
    services: Services,
) -> None:
    old = utcnow() - timedelta(days=400)
    run = sealer(services, clock=fixed(old))
    seqs = await append_many(services, 600)
    await execute(services, "UPDATE audit_log SET at = at - interval '400 days'")
    # The old entries now hash differently: re-seal them as they stand.
    await execute(services, "TRUNCATE audit_tree, audit_node, audit_checkpoint")
    await execute(services, "UPDATE audit_log SET leaf_index = NULL, leaf_hash = NULL")
    await run.run(force_checkpoint=True)
    young = await append_many(services, 10, tag="young")
    await sealer(services).run(force_checkpoint=True)
    report = await prune_entries(services.db, before=utcnow() - timedelta(days=1), actor="test")
    assert report.pruned_below == 512  # a multiple of 256 below the first young entry
    assert report.deleted == 512
    await sealer(services).run(force_checkpoint=True)  # seals the prune's own entry
    verified = await verify(services)
    assert verified.ok, verified.problem
    assert (verified.pruned_below, verified.entries) == (512, 600 + 10 + 1 - 512)
    proof = await inclusion_proof(services.db.pool, young[0])
    assert (proof.leaf_index, proof.tree_size) == (600, verified.checkpoint_size)
    root = await latest_root(services)
    leaf, path = bytes.fromhex(proof.leaf_hash), [bytes.fromhex(h) for h in proof.path]
    assert verify_inclusion(leaf, index=600, size=proof.tree_size, path=path, root=root)
    # The first checkpoint (600 entries, before the prune) is still extended by the latest.
    consistent = await consistency_proof(
        services.db.pool, first=600, second=verified.checkpoint_size
    )
    assert consistent.verified
    with pytest.raises(NotFoundError):
        await inclusion_proof(services.db.pool, seqs[0])


async def latest_root(services: Services) -> bytes:
    async with services.db.pool.acquire() as conn:
        return bytes(
            await conn.fetchval(
                "SELECT root_hash FROM audit_checkpoint ORDER BY signed_at DESC, id DESC LIMIT 1"
            )
        )


async def test_batches_are_read_ahead_and_an_early_stop_leaves_the_connection_usable(
    services: Services,
) -> None:
    await sealed_log(services, 10)
    async with services.db.pool.acquire() as conn, conn.transaction():
        async with contextlib.aclosing(iter_sealed(conn, start=0, batch=3)) as batches:
            sizes = [len(rows) async for rows in batches]
        assert sizes == [3, 3, 3, 1]
        async with contextlib.aclosing(iter_sealed(conn, start=0, batch=3)) as batches:
            async for _ in batches:
                break  # the second batch is already on its way
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 10


async def test_awkward_content_verifies_as_sealed_and_an_edit_of_it_is_still_caught(
    services: Services,
) -> None:
    """The verifier reads each entry as PostgreSQL's JSON of its fields and writes it again
    canonically: escapes, non-ASCII text, nested and non-`Detail` values and nulls must give
    the leaf the sealer computed from the columns."""
    awkward = AuditEntry(
        actor='officer:"quoted" \\ back\\slash',
        action="case.note\ttab\nnewline\u0001",
        target="café:日本:\U0001f600",
        detail={"z": 1, "a": [1, 2], "nested": {"b": None, "a": 1.5}, "": "empty key"},  # type: ignore[dict-item]
        decision_id=None,
        trace_id="t\u2028",
    )
    async with services.db.transaction() as conn:
        seq = await append_entry(conn, awkward)
    await append_many(services, 300)  # past one folded subtree of 256
    await sealer(services).run(force_checkpoint=True)
    assert (await verify(services)).ok
    await execute(services, "UPDATE audit_log SET target = target || 'x' WHERE seq = $1", seq)
    report = await verify(services)
    assert (report.ok, report.broken_seq) == (False, seq)
