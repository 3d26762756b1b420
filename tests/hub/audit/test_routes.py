"""Audit routes on the real app: search with keyset paging, the check against the latest
checkpoint, checkpoints and proofs, the witness's status, the public checkpoint key, signed
export."""

import base64
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from litestar.testing import AsyncTestClient

from hub.app import create_app
from hub.audit import Checkpoint, merkle
from hub.audit.checkpoints import checkpoint_problem
from hub.identity.oauth import UserCreate, add_user
from hub.runtime import Services
from hub.settings import Settings
from tests.hub.audit.builders import append_many, sealer
from tests.support import BASE_URL

pytestmark = [pytest.mark.db, pytest.mark.redis]
PASSWORD = "correct horse battery staple"


async def bearer(
    client: AsyncTestClient, services: Services, name: str, role: str
) -> dict[str, str]:
    """Headers with a fresh access token of a new console user."""
    await add_user(
        services.identity,
        UserCreate(username=name, password=PASSWORD, roles=[role]),  # type: ignore[list-item]
        actor="test",
    )
    answer = await client.post(
        "/oauth/token", data={"grant_type": "password", "username": name, "password": PASSWORD}
    )
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def test_search_pages_newest_first(client: AsyncTestClient, services: Services) -> None:
    headers = await bearer(client, services, "olga", "compliance_officer")
    for n in range(3):
        await add_user(
            services.identity,
            UserCreate(username=f"u{n}", password=PASSWORD, roles=["operator"]),
            actor="test",
        )
    first = (await client.get("/v1/audit/entries?action=user.&limit=2", headers=headers)).json()
    seqs = [e["seq"] for e in first["entries"]]
    assert len(seqs) == 2
    assert seqs[0] > seqs[1]
    after = first["next_before_seq"]
    rest = (
        await client.get(
            f"/v1/audit/entries?action=user.&limit=2&before_seq={after}", headers=headers
        )
    ).json()
    assert [e["action"] for e in rest["entries"]] == ["user.add", "user.add"]
    assert rest["entries"][0]["seq"] < seqs[1]
    assert rest["next_before_seq"] is None
    one = (await client.get(f"/v1/audit/entries/{seqs[0]}", headers=headers)).json()
    assert one["target"] == "user:u2"
    missing = await client.get(f"/v1/audit/entries/{2**62}", headers=headers)
    assert missing.status_code == 404


async def test_verify_names_the_altered_entry(client: AsyncTestClient, services: Services) -> None:
    headers = await bearer(client, services, "olga", "compliance_officer")
    await sealer(services).run(force_checkpoint=True)
    report = (await client.get("/v1/audit/verify", headers=headers)).json()
    assert report["ok"] is True
    assert report["checkpoint_size"] == report["entries"] >= 1
    first = await services.db.pool.fetchval("SELECT seq FROM audit_log WHERE leaf_index = 0")
    await services.db.pool.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = $1", first)
    report = (await client.get("/v1/audit/verify", headers=headers)).json()
    assert (report["ok"], report["broken_seq"], report["broken_index"]) == (False, first, 0)
    assert "altered" in report["problem"]


async def test_checkpoints_and_proofs_verify_with_the_public_key(
    client: AsyncTestClient, services: Services
) -> None:
    headers = await bearer(client, services, "olga", "compliance_officer")
    seqs = await append_many(services, 5)
    await sealer(services).run(force_checkpoint=True)
    await append_many(services, 3)
    await sealer(services).run(force_checkpoint=True)
    key = (await client.get("/v1/audit/checkpoint-key")).json()  # public: no token
    page = (await client.get("/v1/audit/checkpoints", headers=headers)).json()
    newest, older = (msgspec.convert(c, Checkpoint) for c in page["checkpoints"][:2])
    assert checkpoint_problem(newest, public_pem=key["public_key"]) is None
    answer = await client.get(f"/v1/audit/proofs/inclusion/{seqs[2]}", headers=headers)
    proof = answer.json()
    assert proof["tree_size"] == newest.tree_size
    assert merkle.verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]),
        index=proof["leaf_index"],
        size=proof["tree_size"],
        path=[bytes.fromhex(h) for h in proof["path"]],
        root=bytes.fromhex(newest.root_hash),
    )
    consistency = (await client.get("/v1/audit/proofs/consistency", headers=headers)).json()
    assert (consistency["first"], consistency["second"]) == (older.tree_size, newest.tree_size)
    assert consistency["verified"] is True
    assert merkle.verify_consistency(
        first=older.tree_size,
        second=newest.tree_size,
        first_root=bytes.fromhex(older.root_hash),
        second_root=bytes.fromhex(newest.root_hash),
        path=[bytes.fromhex(h) for h in consistency["path"]],
    )
    await append_many(services, 1)
    [latest] = await append_many(services, 1)
    unsealed = await client.get(f"/v1/audit/proofs/inclusion/{latest}", headers=headers)
    assert unsealed.status_code == 409
    assert unsealed.json()["type"].endswith("audit_entry_unsealed")


async def test_export_is_signed_and_audited(client: AsyncTestClient, services: Services) -> None:
    headers = await bearer(client, services, "olga", "compliance_officer")
    answer = await client.post("/v1/audit/export", json={"format": "csv"}, headers=headers)
    assert answer.status_code == 200
    export = answer.json()
    assert export["count"] >= 1
    signed = export["signed"]
    key = load_pem_public_key(signed["public_key"].encode())
    key.verify(base64.b64decode(signed["signature"]), signed["manifest"].encode())  # type: ignore[union-attr, call-arg]
    assert export["filename"] in signed["manifest"]
    latest = (await client.get("/v1/audit/entries?limit=1", headers=headers)).json()["entries"][0]
    assert latest["action"] == "audit.export"


async def test_admin_is_denied_audit(client: AsyncTestClient, services: Services) -> None:
    await add_user(
        services.identity,
        UserCreate(username="otto", password=PASSWORD, roles=["operator"]),
        actor="test",
    )
    token = await client.post(
        "/oauth/token", data={"grant_type": "password", "username": "otto", "password": PASSWORD}
    )
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    denied = await client.get("/v1/audit/entries", headers=headers)
    assert denied.status_code == 403
    assert denied.json()["decision_id"]


async def test_the_witness_status_names_its_kind_and_what_it_lacks_never_its_address(
    settings: Settings, services: Services, client: AsyncTestClient, tmp_path: Path
) -> None:
    headers = await bearer(client, services, "olga", "compliance_officer")
    none = (await client.get("/v1/audit/witness", headers=headers)).json()
    assert none == {"kind": "none", "unwitnessed": 0, "owed_since": None}
    await append_many(services, 2)
    signed = (await sealer(services).run(force_checkpoint=True)).checkpoint
    assert signed is not None
    secret_url = "https://user:secret@witness.example/add-checkpoint"
    with_url = msgspec.structs.replace(settings, audit_witness=secret_url)
    async with AsyncTestClient(app=create_app(with_url), base_url=BASE_URL) as other:
        answer = await other.get("/v1/audit/witness", headers=headers)
    assert answer.status_code == 200, answer.text
    assert "secret" not in answer.text
    status = answer.json()
    assert (status["kind"], status["unwitnessed"]) == ("url", 1)
    assert status["owed_since"].startswith(signed.signed_at.isoformat()[:19])
    witness = tmp_path / "witness.jsonl"
    await sealer(services, witness=str(witness)).run()
    with_file = msgspec.structs.replace(settings, audit_witness=str(witness))
    async with AsyncTestClient(app=create_app(with_file), base_url=BASE_URL) as other:
        caught_up = (await other.get("/v1/audit/witness", headers=headers)).json()
    assert caught_up == {"kind": "file", "unwitnessed": 0, "owed_since": None}
