"""PII at rest and crypto-shredding through the real ingest route; disk-pressure refusal."""

import hashlib
from pathlib import Path

import asyncpg
import msgspec
from litestar.testing import AsyncTestClient

from hub.app import create_app
from hub.retention.schemas import ForgetRequest
from hub.retention.service import forget
from hub.retention.vault import (
    PII_REF,
    SHREDDED,
    hydrate,
    hydrate_sealed,
    read_attributes,
    sealed_of_event,
)
from hub.runtime import Services
from hub.settings import Settings
from tests.hub.ingest.builders import batch, event
from tests.support import BASE_URL, EdgeNode, run_hub, signed_headers

EVENTS = "/v1/edge/events"


async def _ingest(client: AsyncTestClient, node: EdgeNode, body: bytes) -> None:
    answer = await client.post(
        EVENTS, content=body, headers=signed_headers(node.signer, path=EVENTS, body=body)
    )
    assert answer.status_code == 200, answer.text


_STORED = "SELECT id, captured_at, payload::text AS payload FROM detection_event"
# The events with their vault rows read by the same statement, as a feed page reads them.
_STORED_WITH_VAULT_ROWS = f"""
SELECT e.id, e.captured_at, e.payload::text AS payload,
       {sealed_of_event("e.id", "e.captured_at")} AS sealed
FROM detection_event e ORDER BY e.id"""  # noqa: S608 (fixed fragments)


async def _stored(settings: Settings, query: str = _STORED) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


async def test_forgotten_plate_is_unreadable_and_the_chain_still_verifies(
    client: AsyncTestClient, edge_node: EdgeNode, services: Services, settings: Settings
) -> None:
    await _ingest(client, edge_node, batch(event(), event()))
    (first, second) = await _stored(settings)
    async with services.db.pool.acquire() as conn:
        sealed = await read_attributes(
            conn, services.retention.keys, event_pk=first["id"], captured_at=first["captured_at"]
        )
        ciphertexts = await conn.fetch("SELECT ciphertext FROM pii_attribute")
    assert sealed == {1: {"plate_text": "AB-123-CD"}}
    assert all(b"AB-123" not in bytes(r["ciphertext"]) for r in ciphertexts)

    done = await forget(
        services.db,
        services.retention,
        ForgetRequest(reason="erasure request", plate_text="ab 123 cd"),
        actor="user:officer",
    )
    # The payloads never held the plate: nothing left to scrub.
    assert (done.vault_rows, done.payloads_scrubbed) == (2, 0)
    async with services.db.pool.acquire() as conn:
        for row in (first, second):
            gone = await read_attributes(
                conn, services.retention.keys, event_pk=row["id"], captured_at=row["captured_at"]
            )
            assert gone == {1: SHREDDED}
        audit = await conn.fetch("SELECT target, detail::text AS detail FROM audit_log")
    assert all("AB-123" not in row["payload"] for row in await _stored(settings))
    assert any(r["target"] == f"pii_subject:{done.subject}" for r in audit)
    assert all("AB-123" not in r["detail"] and "AB123" not in r["detail"] for r in audit)

    verify = await run_hub(
        "audit",
        "verify",
        "--json",
        env={
            "HUB_DATABASE_URL": settings.database_url,
            "HUB_REDIS_URL": settings.redis_url,
            "HUB_REDIS_PREFIX": settings.redis_prefix,
            "HUB_LOG_JSON": "false",
        },
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert msgspec.json.decode(verify.stdout)["ok"] is True


def _env(settings: Settings) -> dict[str, str]:
    env = {
        "HUB_DATABASE_URL": settings.database_url,
        "HUB_REDIS_URL": settings.redis_url,
        "HUB_REDIS_PREFIX": settings.redis_prefix,
        "HUB_SECRETS_DIR": settings.secrets_dir,
        "HUB_PII_MASTER_KEY_ID": settings.pii_master_key_id,
        "HUB_LOG_JSON": "false",
    }
    if settings.pii_keys_dir:
        env["HUB_PII_KEYS_DIR"] = settings.pii_keys_dir
    return env


async def test_payloads_are_stored_without_pii_and_hydrated_from_the_vault(
    client: AsyncTestClient, edge_node: EdgeNode, services: Services, settings: Settings
) -> None:
    body = batch(event())
    await _ingest(client, edge_node, body)
    (row,) = await _stored(settings)
    assert "AB-123" not in row["payload"]
    stored = msgspec.json.decode(row["payload"])
    assert stored["detections"][1]["attributes"] == {}
    assert stored[PII_REF] == {"node_id": str(edge_node.node.id), "detections": [1]}

    # The content hash is still the event's as sent: a re-send gets the first answer again
    # (not "already used for different content") and stores nothing new.
    again = await client.post(
        EVENTS, content=body, headers=signed_headers(edge_node.signer, path=EVENTS, body=body)
    )
    assert again.json()["results"][0]["status"] == "accepted"
    assert len(await _stored(settings)) == 1

    (record,) = await hydrate(services.db.pool, services.retention.keys, [stored])
    assert record["detections"][1]["attributes"] == {"plate_text": "AB-123-CD"}
    assert PII_REF not in record


async def test_vault_rows_read_with_their_events_open_as_reading_them_after(
    client: AsyncTestClient, edge_node: EdgeNode, services: Services, settings: Settings
) -> None:
    other = event()
    other["detections"][1]["attributes"] = {"plate_text": "XY-9"}
    await _ingest(client, edge_node, batch(event(), other))
    rows = await _stored(settings, _STORED_WITH_VAULT_ROWS)
    keys = services.retention.keys

    def payloads() -> list[dict[str, object]]:
        return [msgspec.json.decode(r["payload"]) for r in rows]

    by_ids = await hydrate(services.db.pool, keys, payloads())
    with_rows = hydrate_sealed(
        keys, payloads(), [(r["id"], r["captured_at"], r["sealed"] or []) for r in rows]
    )
    assert with_rows == by_ids
    assert sorted(r["detections"][1]["attributes"]["plate_text"] for r in with_rows) == [
        "AB-123-CD",
        "XY-9",
    ]
    assert all(PII_REF not in r for r in with_rows)  # the vault's reference never leaves
    # The rows given are what is opened (the payloads' own ids are not consulted): each
    # event's row and vault rows handed to the other record give it the other's plate, and
    # a row without vault entries gives none.
    exchanged = hydrate_sealed(
        keys, payloads(), [(r["id"], r["captured_at"], r["sealed"] or []) for r in reversed(rows)]
    )
    assert [r["detections"][1]["attributes"] for r in exchanged] == [
        r["detections"][1]["attributes"] for r in reversed(by_ids)
    ]
    (nothing,) = hydrate_sealed(keys, payloads()[:1], [(rows[0]["id"], rows[0]["captured_at"], [])])
    assert nothing["detections"][1]["attributes"] == {}
    # A vault row opens only for the event it was sealed for: handed to the other event, it
    # opens to nothing rather than to the other's plate.
    swapped = hydrate_sealed(
        keys,
        payloads(),
        [
            (r["id"], r["captured_at"], s["sealed"])
            for r, s in zip(rows, reversed(rows), strict=True)
        ],
    )
    assert [r["detections"][1]["attributes"] for r in swapped] == [{}, {}]
    forgot = await run_hub(
        "privacy", "forget", "--plate", "XY-9", "--reason", "erasure", env=_env(settings)
    )
    assert forgot.returncode == 0, forgot.stdout + forgot.stderr
    rows = await _stored(settings, _STORED_WITH_VAULT_ROWS)
    after = hydrate_sealed(
        keys, payloads(), [(r["id"], r["captured_at"], r["sealed"] or []) for r in rows]
    )
    assert sorted(str(r["detections"][1]["attributes"]) for r in after) == [
        "{'plate_text': 'AB-123-CD'}",
        "{}",
    ]


async def test_after_hub_privacy_forget_nothing_yields_the_plate(
    client: AsyncTestClient, edge_node: EdgeNode, services: Services, settings: Settings
) -> None:
    await _ingest(client, edge_node, batch(event(), event()))
    forgot = await run_hub(
        "privacy", "forget", "--plate", "AB-123-CD", "--reason", "erasure", env=_env(settings)
    )
    assert forgot.returncode == 0, forgot.stdout + forgot.stderr
    rows = await _stored(settings)
    assert all("AB-123" not in r["payload"] for r in rows)
    records = await hydrate(
        services.db.pool,
        services.retention.keys,
        [msgspec.json.decode(r["payload"]) for r in rows],
    )
    for record in records:
        assert record["detections"][1]["attributes"] == {}
        assert "AB-123" not in msgspec.json.encode(record).decode()
    async with services.db.pool.acquire() as conn:
        for row in rows:
            gone = await read_attributes(
                conn, services.retention.keys, event_pk=row["id"], captured_at=row["captured_at"]
            )
            assert gone == {1: SHREDDED}
    verify = await run_hub("audit", "verify", "--json", env=_env(settings))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert msgspec.json.decode(verify.stdout)["ok"] is True


async def test_a_new_sighting_after_forgetting_gets_a_new_key(
    client: AsyncTestClient, edge_node: EdgeNode, services: Services, settings: Settings
) -> None:
    await _ingest(client, edge_node, batch(event()))
    await forget(
        services.db,
        services.retention,
        ForgetRequest(reason="r", plate_text="AB-123-CD"),
        actor="user:o",
    )
    await _ingest(client, edge_node, batch(event()))
    rows = sorted(await _stored(settings), key=lambda r: r["id"])
    async with services.db.pool.acquire() as conn:
        keys = services.retention.keys
        old = await read_attributes(
            conn, keys, event_pk=rows[0]["id"], captured_at=rows[0]["captured_at"]
        )
        new = await read_attributes(
            conn, keys, event_pk=rows[1]["id"], captured_at=rows[1]["captured_at"]
        )
    assert old == {1: SHREDDED}
    assert new == {1: {"plate_text": "AB-123-CD"}}


async def test_disk_pressure_refuses_media_with_507(
    settings: Settings, edge_node: EdgeNode
) -> None:
    full = msgspec.structs.replace(settings, media_disk_max_used_percent=0.001)
    data = b"\xff\xd8\xff\xe0" + b"jpeg" * 50
    sha = hashlib.sha256(data).hexdigest()
    path = f"/v1/edge/media/{sha}"
    async with AsyncTestClient(app=create_app(full), base_url=BASE_URL) as http:
        headers = signed_headers(edge_node.signer, path=path, body=data, content_type="image/jpeg")
        answer = await http.post(path, content=data, headers=headers)
    assert answer.status_code == 507
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == "insufficient_storage"
    assert not (Path(settings.media_dir) / sha[:2] / sha[2:4] / sha).exists()


async def test_master_key_rotation_rewraps_every_data_key(
    client: AsyncTestClient, edge_node: EdgeNode, services: Services, settings: Settings
) -> None:
    from hub.retention.crypto import KeyRing
    from hub.retention.kit import _keys_dir
    from hub.retention.vault import rotate_master

    await _ingest(client, edge_node, batch(event()))
    (row,) = await _stored(settings)
    stored = msgspec.json.decode(row["payload"])
    folder = _keys_dir(settings)
    old_id = services.retention.keys.current_id
    new_id = "rotated" + old_id
    rotated = KeyRing.load(folder, current_id=new_id)
    conn = await asyncpg.connect(settings.database_url)
    try:
        assert await rotate_master(conn, rotated) >= 1
        ids = {
            r["master_key_id"]
            for r in await conn.fetch("SELECT master_key_id FROM pii_subject_key")
        }
    finally:
        await conn.close()
    assert ids == {new_id}
    # Without the old master key at all, the rotated ring still opens the data.
    only_new = KeyRing(
        current_id=new_id,
        masters={new_id: rotated.masters[new_id]},
        subject_key=rotated.subject_key,
    )
    (record,) = await hydrate(services.db.pool, only_new, [stored])
    assert record["detections"][1]["attributes"] == {"plate_text": "AB-123-CD"}
    (folder / f"master-{new_id}.key").unlink()  # leave the test's key folder as it was
