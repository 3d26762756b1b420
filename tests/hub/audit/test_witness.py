"""The verifying witness (`hub audit witness`) as a real server on loopback, fed by the real
sealer on real PostgreSQL: it takes checkpoints that extend what it holds, refuses a rewritten
log and keeps the evidence, and a hub whose idea of the witness is stale catches up through
the 409. Then its rules alone: foreign keys, forged notes, stale sizes, bad proofs."""

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from prometheus_client import REGISTRY

from hub.audit import (
    AuditEntry,
    Checkpoint,
    LogReport,
    append_entry,
    prune_entries,
    public_key_in,
    verify_log,
)
from hub.audit.checkpoints import CheckpointSigner, read_witness_checkpoints
from hub.audit.errors import InconsistentError, StaleSizeError
from hub.audit.schemas import WitnessRequest
from hub.audit.witness import ADD_PATH, WitnessState, create_witness_app, judge
from hub.kit.clock import utcnow
from hub.kit.errors import BadRequestError, ForbiddenError
from hub.observability.slo import load_spec
from hub.runtime import Services
from tests.hub.audit.builders import append_many, execute, fixed, rewrite_log, sealer, witness_state
from tests.support import ThreadedServer, free_port

pytestmark = pytest.mark.db


def refusals() -> float:
    return REGISTRY.get_sample_value("hub_audit_witness_refusals_total") or 0.0


async def old_entries(services: Services, n: int) -> None:
    """n entries past the default retention of audit entries (2,555 days), before sealing."""
    await append_many(services, n)
    await execute(
        services,
        "UPDATE audit_log SET at = at - interval '3000 days' WHERE leaf_index IS NULL",
    )


async def verify_against(services: Services, path: Path) -> LogReport:
    key = public_key_in(services.settings.secrets_dir)
    return await verify_log(services.db.pool, key=key, trusted=read_witness_checkpoints(path))


async def test_the_witness_takes_each_checkpoint_that_extends_what_it_holds(
    services: Services, tmp_path: Path
) -> None:
    state = witness_state(services, tmp_path)
    with ThreadedServer(create_witness_app(state)) as server:
        url = f"{server.url}{ADD_PATH}"
        for n in (3, 5, 1):  # checkpoints of 3, 8 and 9 entries
            await append_many(services, n)
            report = await sealer(services, witness=url).run(force_checkpoint=True)
            assert report.witnessed == 1
        async with httpx.AsyncClient() as http:
            newest = msgspec.json.decode((await http.get(f"{server.url}/checkpoint")).content)
    held = read_witness_checkpoints(state.path)
    assert [c.tree_size for c in held] == [3, 8, 9]
    assert newest["tree_size"] == 9
    report = await verify_against(services, state.path)
    assert (report.ok, report.checkpoints_matched) == (True, 3)


async def test_a_rewritten_log_is_refused_and_the_witness_keeps_the_evidence(
    services: Services, tmp_path: Path
) -> None:
    state = witness_state(services, tmp_path)
    with ThreadedServer(create_witness_app(state)) as server:
        url = f"{server.url}{ADD_PATH}"
        seqs = await append_many(services, 6)
        assert (await sealer(services, witness=url).run(force_checkpoint=True)).witnessed == 1
        # The log rewritten and sealed again: the hub signs a checkpoint of it and offers it.
        await rewrite_log(services, seqs[1])
        await append_many(services, 2)
        later = sealer(services, witness=url, clock=fixed(utcnow() + timedelta(minutes=1)))
        before = refusals()
        refused = await later.run(force_checkpoint=True)
    assert refused.witnessed == 0
    assert refusals() == before + 1  # AuditWitnessRefused pages on any increase
    assert [c.tree_size for c in read_witness_checkpoints(state.path)] == [6]
    evidence = msgspec.json.decode(state.path.with_name("witness.jsonl.refused").read_bytes())
    assert evidence["request"]["checkpoint"]["tree_size"] == 8
    assert evidence["witnessed"]["tree_size"] == 6
    # Both signed by the hub's key, and no proof joins them: a rewrite anyone can check.
    assert evidence["request"]["checkpoint"]["key_id"] == evidence["witnessed"]["key_id"]
    async with services.db.pool.acquire() as conn:
        unwitnessed = await conn.fetchval(
            "SELECT count(*) FROM audit_checkpoint WHERE witnessed_at IS NULL"
        )
    assert unwitnessed == 1  # kept waiting: AuditWitnessBehind will say so


async def test_a_hub_with_a_stale_idea_of_the_witness_proves_again_from_its_size(
    services: Services, tmp_path: Path
) -> None:
    state = witness_state(services, tmp_path)
    await append_many(services, 4)
    await sealer(services).run(force_checkpoint=True)
    # The hub believes the witness has the checkpoint of 4 (say a witness restored from an
    # older backup, holding none): the next offer proves from 4, the witness answers 409 with
    # 0, and the offer is made again from there.
    await execute(services, "UPDATE audit_checkpoint SET witnessed_at = now()")
    await append_many(services, 3)
    with ThreadedServer(create_witness_app(state)) as server:
        report = await sealer(services, witness=f"{server.url}{ADD_PATH}").run(
            force_checkpoint=True
        )
    assert report.witnessed == 1
    assert [c.tree_size for c in read_witness_checkpoints(state.path)] == [7]


async def test_bad_bodies_get_problems_not_server_errors(
    services: Services, tmp_path: Path
) -> None:
    state = witness_state(services, tmp_path)
    with ThreadedServer(create_witness_app(state)) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            answers = [
                await http.post(
                    ADD_PATH, content=body, headers={"content-type": "application/json"}
                )
                for body in (b"{", b'{"old_size": -1}', b"[]", b"x" * 40_000)
            ]
    for answer in answers:
        assert 400 <= answer.status_code < 500, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
    assert not state.path.exists()


def signed(signer: CheckpointSigner, size: int, root: bytes) -> Checkpoint:
    return signer.sign(size=size, root=root, at=utcnow())


def test_the_rules_refuse_foreign_forged_stale_and_unproven_checkpoints(tmp_path: Path) -> None:
    signer = CheckpointSigner.from_dir(str(tmp_path / "log"))
    other = CheckpointSigner.from_dir(str(tmp_path / "other"))
    key = signer.public
    first = signed(signer, 2, b"\x01" * 32)

    def request(
        checkpoint: Checkpoint, old_size: int, proof: list[str] | None = None
    ) -> WitnessRequest:
        return WitnessRequest(old_size=old_size, consistency=proof or [], checkpoint=checkpoint)

    assert judge(None, request(first, 0), log_key=key) is None  # the first is taken as it is
    with pytest.raises(ForbiddenError):
        judge(None, request(signed(other, 2, b"\x01" * 32), 0), log_key=key)
    forged = msgspec.structs.replace(first, tree_size=3)
    with pytest.raises(ForbiddenError):
        judge(None, request(forged, 0), log_key=key)
    later = signed(signer, 5, b"\x02" * 32)
    with pytest.raises(StaleSizeError) as stale:
        judge(first, request(later, 4), log_key=key)
    assert stale.value.extra == {"witness_size": 2}
    with pytest.raises(BadRequestError):
        judge(first, request(first, 5), log_key=key)
    with pytest.raises(InconsistentError):
        judge(first, request(later, 2, ["ab" * 32]), log_key=key)
    with pytest.raises(InconsistentError):  # one size, two roots
        judge(first, request(signed(signer, 2, b"\x03" * 32), 2), log_key=key)


def test_the_witness_reads_only_the_end_of_a_long_state_file(tmp_path: Path) -> None:
    signer = CheckpointSigner.from_dir(str(tmp_path / "log"))
    state = WitnessState(path=tmp_path / "state.jsonl", log_key=signer.public)
    assert state.latest() is None
    old = msgspec.json.encode(signed(signer, 1, b"\x01" * 32)) + b"\n"
    newest = signed(signer, 2, b"\x02" * 32)
    state.path.write_bytes(old * 5_000 + msgspec.json.encode(newest) + b"\n\n")
    assert state.latest() == newest


def test_the_refusal_alert_reads_the_counter_the_sealer_increments() -> None:
    root = Path(__file__).resolve().parents[3]
    spec = load_spec(root / "deploy" / "slo.yaml")
    alert = next(a for a in spec.alerts if a.alert == "AuditWitnessRefused")
    assert "increase(hub_audit_witness_refusals_total[" in alert.expr
    assert alert.severity == "page"
    assert (root / "runbooks" / "AuditWitnessRefused.md").is_file()


async def test_what_the_witness_receives_is_hashes_and_signatures_never_entry_content(
    services: Services, tmp_path: Path
) -> None:
    # Entries that name events and carry a plate-like value, as feed pages' entries name ids.
    event_id, plate = "5f0c1e2a-7b3d-4c1e-9a2b-0d4e6f8a1b2c", "AB-123-CD"
    async with services.db.transaction() as conn:
        entry = AuditEntry(
            actor="agency:police-north",
            action="feed.page",
            target=f"event:{event_id}",
            detail={"event_ids": [event_id], "note": plate},
        )
        await append_entry(conn, entry)
    await append_many(services, 3)
    received: list[bytes] = []
    state = witness_state(services, tmp_path)
    witness = create_witness_app(state)

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        async def tap() -> Any:
            message = await receive()
            if message.get("type") == "http.request":
                received.append(message.get("body", b""))
            return message

        await witness(scope, tap, send)

    with ThreadedServer(recording) as server:
        url = f"{server.url}{ADD_PATH}"
        await sealer(services, witness=url).run(force_checkpoint=True)
        await append_many(services, 2)
        await sealer(services, witness=url).run(force_checkpoint=True)
    bodies = [b for b in received if b]
    assert len(bodies) == 2
    for body in bodies:
        request = msgspec.json.decode(body)
        assert set(request) == {"old_size", "consistency", "checkpoint"}
        assert set(request["checkpoint"]) == {
            "tree_size", "root_hash", "signed_at", "key_id", "signature", "note",
        }  # fmt: skip
        for value in (event_id, plate, "police-north", "feed.page", "thing.do"):
            assert value.encode() not in body
    assert msgspec.json.decode(bodies[1])["consistency"]  # the second proves from the first


async def test_pruning_waits_for_a_witness_that_is_behind_so_it_can_still_be_given_a_proof(
    services: Services, tmp_path: Path
) -> None:
    state = witness_state(services, tmp_path)
    port = free_port()
    with ThreadedServer(create_witness_app(state), port=port) as server:
        url = f"{server.url}{ADD_PATH}"
        await old_entries(services, 300)  # held by the witness: not on a tile's edge
        assert (await sealer(services, witness=url).run(force_checkpoint=True)).witnessed == 1
    # The witness is away while the log grows past three more tiles and is checkpointed.
    await old_entries(services, 800)
    assert (await sealer(services, witness=url).run(force_checkpoint=True)).witnessed == 0

    pruned = await prune_entries(services.db, before=utcnow(), actor="test", witness=url, batch=500)

    # The checkpoint covers 1,100 entries (1,024 could go), but the tile of the witness's 300
    # must stay: a consistency proof from 300 needs its leaves.
    assert (pruned.pruned_below, pruned.deleted, pruned.witness_holds) == (256, 256, 300)
    with ThreadedServer(create_witness_app(state), port=port):
        assert (await sealer(services, witness=url).run()).witnessed == 1
    assert [c.tree_size for c in read_witness_checkpoints(state.path)] == [300, 1100]
    report = await verify_against(services, state.path)
    assert (report.ok, report.pruned_below) == (True, 256), report.problem
    # Caught up: the next prune goes as far as the checkpoint allows.
    again = await prune_entries(services.db, before=utcnow(), actor="test", witness=url)
    assert (again.pruned_below, again.witness_holds) == (1024, None)


async def test_a_file_witness_does_not_hold_pruning_back(
    services: Services, tmp_path: Path
) -> None:
    witness = str(tmp_path / "witness.jsonl")
    await old_entries(services, 300)
    await sealer(services, witness=witness).run(force_checkpoint=True)
    await old_entries(services, 800)
    await sealer(services).run(force_checkpoint=True)  # signed, not yet written to the file
    pruned = await prune_entries(services.db, before=utcnow(), actor="test", witness=witness)
    # A file takes checkpoints without proofs: nothing it lacks needs pruned entries.
    assert (pruned.pruned_below, pruned.witness_holds) == (1024, None)
