"""The migrated schema matches the Piccolo tables, and partitioning is what we expect."""

import asyncpg
import pytest

from hub.settings import Settings
from hub.tables import ALL_TABLES

pytestmark = pytest.mark.db


async def test_piccolo_tables_match_the_migrated_columns(settings: Settings) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        for table in ALL_TABLES:
            name = table._meta.tablename
            rows = await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = $1", name
            )
            in_db = {r["column_name"] for r in rows}
            in_piccolo = {c._meta.db_column_name for c in table._meta.columns}
            assert in_db == in_piccolo, (
                f"{name}: database {sorted(in_db)} vs Piccolo {sorted(in_piccolo)}"
            )
    finally:
        await conn.close()


async def test_detection_event_is_range_partitioned_with_a_default(settings: Settings) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        strategy = await conn.fetchval(
            "SELECT partstrat::text FROM pg_partitioned_table "
            "WHERE partrelid = 'detection_event'::regclass"
        )
        default = await conn.fetchval(
            "SELECT partdefid::regclass::text FROM pg_partitioned_table "
            "WHERE partrelid = 'detection_event'::regclass"
        )
        key_columns = await conn.fetch(
            """SELECT a.attname FROM pg_index i JOIN pg_attribute a
               ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
               WHERE i.indrelid = 'detection_event'::regclass AND i.indisprimary"""
        )
    finally:
        await conn.close()
    assert strategy == "r"
    assert default == "detection_event_default"
    assert {r["attname"] for r in key_columns} == {"id", "captured_at"}


# Every index on detection_event costs each ingested event an insert: the table keeps those
# a query reads (migration 0026 dropped the GIN on classes, which none did).
EVENT_INDEXES = {
    "detection_event_pkey": "(id, captured_at): feed sequencing, planning, retention by row",
    "detection_event_node_event_key": "exactly-once ingest: an event re-sent by its node",
    "detection_event_camera_idx": "retention and incident browsing by camera and time",
    "detection_event_captured_idx": "retention's keyset walk by (captured_at, id)",
    "detection_event_media_idx": "the events naming an image (media release, scans)",
}


# The feed sequencer inserts each event into every index of feed_entry: it keeps those a query
# reads (migration 0027 dropped (camera_id, seq), which none did).
FEED_ENTRY_INDEXES = {
    "feed_entry_pkey": "(seq): every page, offer fill and live range walks positions",
    "feed_entry_event_key": "(event_pk, captured_at): an event's position, once",
}


# Ingest's trigger queues every accepted event here: no key (migration 0028), the sequencer
# picks the head by time and deletes by ctid.
FEED_PENDING_INDEXES = {
    "feed_pending_queued_idx": "(queued_at): the sequencer's pick of the oldest committed",
}

# Ingest records ~80 regions per batch: only the index release and the scan read them by
# (migration 0030 dropped the (id) key, which nothing read).
MEDIA_REGION_INDEXES = {
    "media_region_sha256_idx": "(sha256): an image's regions, for release and the scan",
}


@pytest.mark.parametrize(
    ("table", "kept", "migration"),
    [
        ("detection_event", EVENT_INDEXES, "2026-12-06T00:00:26:000000"),
        ("feed_entry", FEED_ENTRY_INDEXES, "2026-12-06T00:00:27:000000"),
        ("feed_pending", FEED_PENDING_INDEXES, "2026-12-06T00:00:28:000000"),
        ("media_region", MEDIA_REGION_INDEXES, "2026-12-06T00:00:30:000000"),
    ],
)
async def test_hot_tables_keep_only_the_indexes_queries_read(
    settings: Settings, table: str, kept: dict[str, str], migration: str
) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        names = await conn.fetch(
            "SELECT indexrelid::regclass::text AS name FROM pg_index WHERE indrelid = $1::regclass",
            table,
        )
        applied = await conn.fetchval("SELECT count(*) FROM migration WHERE name = $1", migration)
    finally:
        await conn.close()
    assert applied == 1
    assert {r["name"] for r in names} == set(kept)


async def test_a_vault_key_row_cannot_be_deleted_so_its_items_need_no_foreign_key(
    settings: Settings,
) -> None:
    """Migration 0029 traded pii_attribute's foreign key for a refusal of every DELETE on
    pii_subject_key: forgetting shreds a key in place, so an item's key row always exists."""
    conn = await asyncpg.connect(settings.database_url)
    subject = "e" * 64
    try:
        foreign_keys = await conn.fetchval(
            """SELECT count(*) FROM pg_constraint
               WHERE conrelid = 'pii_attribute'::regclass AND contype = 'f'"""
        )
        outer = conn.transaction()  # rolled back: the test leaves no key row behind
        await outer.start()
        try:
            await conn.execute(
                """INSERT INTO pii_subject_key (subject, master_key_id, wrapped_key)
                   VALUES ($1, 'test', '\\x00')""",
                subject,
            )
            with pytest.raises(asyncpg.RestrictViolationError, match="never deleted"):
                async with conn.transaction():  # a savepoint, so the row can be counted after
                    await conn.execute("DELETE FROM pii_subject_key WHERE subject = $1", subject)
            kept = await conn.fetchval(
                "SELECT count(*) FROM pii_subject_key WHERE subject = $1", subject
            )
        finally:
            await outer.rollback()
    finally:
        await conn.close()
    assert foreign_keys == 0
    assert kept == 1
