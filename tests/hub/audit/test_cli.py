"""`hub audit` in a subprocess: seal (and what reached the witness), verify (a cut tail exits
1), consistency between checkpoints, and the offline check of an evidence package's inclusion
proofs."""

import asyncio
import contextlib
import io
import json
import socket
import sys
import zipfile
from pathlib import Path

import httpx
import pytest
from litestar.testing import AsyncTestClient

from hub.audit import public_key_in
from hub.audit.checkpoints import read_witness_checkpoints
from hub.runtime import Services
from hub.settings import Settings
from tests.hub.audit.builders import append_many, execute, sealer
from tests.hub.audit.test_routes import bearer
from tests.support import free_port, run_hub

pytestmark = pytest.mark.db


def hub_env(settings: Settings) -> dict[str, str]:
    return {
        "HUB_DATABASE_URL": settings.database_url,
        "HUB_REDIS_URL": settings.redis_url,
        "HUB_SECRETS_DIR": settings.secrets_dir,
    }


async def test_seal_then_verify_and_a_cut_tail_exits_1(
    services: Services, settings: Settings
) -> None:
    seqs = await append_many(services, 5)
    env = hub_env(settings)
    sealed = await run_hub("audit", "seal", "--json", env=env)
    assert sealed.returncode == 0, sealed.stderr
    assert json.loads(sealed.stdout)["tree_size"] == 5
    ok = await run_hub("audit", "verify", env=env)
    assert ok.returncode == 0, ok.stderr
    assert "5 entries verified against the checkpoint of 5" in ok.stdout
    async with services.db.pool.acquire() as conn:
        await conn.execute("DELETE FROM audit_log WHERE seq = $1", seqs[-1])
    broken = await run_hub("audit", "verify", env=env)
    assert broken.returncode == 1
    assert "BROKEN" in broken.stdout
    assert "the last 1 were deleted" in broken.stdout


async def test_consistency_between_the_two_newest_checkpoints(
    services: Services, settings: Settings
) -> None:
    env = hub_env(settings)
    await append_many(services, 3)
    assert (await run_hub("audit", "seal", env=env)).returncode == 0
    await append_many(services, 4)
    assert (await run_hub("audit", "seal", env=env)).returncode == 0
    proved = await run_hub("audit", "consistency", "--json", env=env)
    assert proved.returncode == 0, proved.stderr
    answer = json.loads(proved.stdout)
    assert (answer["first"], answer["second"], answer["verified"]) == (3, 7, True)
    listed = await run_hub("audit", "checkpoints", env=env)
    assert listed.stdout.count("size") == 2


async def test_seal_says_what_reached_the_witness_as_its_runbook_has_an_operator_check(
    services: Services, settings: Settings, tmp_path: Path
) -> None:
    await append_many(services, 2)
    with socket.socket() as probe:  # a loopback port where nothing listens: a witness down
        probe.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{probe.getsockname()[1]}/checkpoints"
    failed = await run_hub("audit", "seal", env={**hub_env(settings), "HUB_AUDIT_WITNESS": down})
    assert failed.returncode == 0, failed.stderr
    assert "checkpoint of 2 entries signed; 0 handed to the witness" in failed.stdout
    assert "audit witness unreachable" in failed.stdout + failed.stderr
    witness = tmp_path / "witness.jsonl"
    env = {**hub_env(settings), "HUB_AUDIT_WITNESS": str(witness)}
    caught_up = await run_hub("audit", "seal", env=env)
    assert "; 2 handed to the witness" in caught_up.stdout  # the one it missed, and this one
    assert len(witness.read_bytes().splitlines()) == 2
    assert "witness" not in (await run_hub("audit", "seal", env=hub_env(settings))).stdout
    checked = await run_hub("audit", "verify", "--checkpoint", str(witness), env=hub_env(settings))
    assert checked.returncode == 0, checked.stderr
    assert "against the checkpoint of 2 signed at" in checked.stdout
    assert "and 1 earlier one(s)" in checked.stdout  # both lines of the witness file matched


@pytest.mark.redis
async def test_evidence_proofs_verify_offline_and_tampering_is_caught(
    client: AsyncTestClient, services: Services, tmp_path: Path
) -> None:
    headers = await bearer(client, services, "olga", "compliance_officer")
    made = (await client.post("/v1/incidents", json={"title": "Gate"}, headers=headers)).json()
    await client.post(f"/v1/incidents/{made['id']}/notes", json={"body": "n"}, headers=headers)
    package = (await client.post(f"/v1/incidents/{made['id']}/export", headers=headers)).content
    key = (await client.get("/v1/audit/checkpoint-key")).json()["public_key"]
    (tmp_path / "key.pem").write_text(key)
    (tmp_path / "evidence.zip").write_bytes(package)
    offline = {"HUB_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}  # never used
    ok = await run_hub(
        "audit",
        "verify-proofs",
        str(tmp_path / "evidence.zip"),
        "--key",
        str(tmp_path / "key.pem"),
        env=offline,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "2 entries proven against the signed checkpoint" in ok.stdout
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        bundle = json.loads(archive.read("audit_proofs.json"))
    bundle["entries"][0]["entry"]["actor"] = "user:someone-else"
    (tmp_path / "forged.json").write_text(json.dumps(bundle))
    bad = await run_hub(
        "audit",
        "verify-proofs",
        str(tmp_path / "forged.json"),
        "--key",
        str(tmp_path / "key.pem"),
        env=offline,
    )
    assert bad.returncode == 1
    assert "altered" in bad.stdout


async def test_hub_audit_witness_serves_a_verifying_witness(
    services: Services, settings: Settings, tmp_path: Path
) -> None:
    key = public_key_in(settings.secrets_dir) or sealer(services).key
    (tmp_path / "log.pem").write_text(key.public_key)
    state, port = tmp_path / "state.jsonl", free_port()
    witness = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "hub.cli.main", "audit", "witness", "--state", str(state)),
        *("--log-key", str(tmp_path / "log.pem"), "--port", str(port)),
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(100):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{url}/checkpoint")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        await append_many(services, 3)
        report = await sealer(services, witness=f"{url}/add-checkpoint").run(force_checkpoint=True)
    finally:
        witness.terminate()
        await witness.wait()
    assert report.witnessed == 1
    assert [c.tree_size for c in read_witness_checkpoints(state)] == [3]


async def test_prune_says_when_a_lagging_witness_held_it_back(
    services: Services, settings: Settings
) -> None:
    await append_many(services, 300)
    await execute(services, "UPDATE audit_log SET at = at - interval '30 days'")
    await sealer(services).run(force_checkpoint=True)  # never reached a witness
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{probe.getsockname()[1]}/add-checkpoint"
    held = await run_hub(
        "audit", "prune", "--older-than-days", "1",
        env={**hub_env(settings), "HUB_AUDIT_WITNESS": down},
    )  # fmt: skip
    assert held.returncode == 0, held.stderr
    assert "deleted 0; entries below 0 are pruned; held back for the witness, which holds 0" in (
        held.stdout
    )
    pruned = await run_hub(
        "audit", "prune", "--older-than-days", "1", "--json", env=hub_env(settings)
    )
    assert json.loads(pruned.stdout) == {"pruned_below": 256, "deleted": 256, "witness_holds": None}
