"""SQL for the bundle registry; the only module that queries `policy_bundles`."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from hub.policy.bundles.archive import BundleManifest
from hub.policy.bundles.schemas import BundleRead, BundleState, RegoTestSummary

# Arbitrary constant naming the advisory lock that serialises activations.
ACTIVATION_LOCK_KEY = 0x6875625F706F6C61  # "hub_pola"

_COLUMNS = """revision, sha256, status, manifest::text AS manifest, uploaded_at, uploaded_by,
              activated_at, activated_by, test_report::text AS test_report"""


class StoredBundle(msgspec.Struct, frozen=True, kw_only=True):
    """A row's archive and checksum, for loading it into an engine."""

    revision: str
    sha256: str
    archive: bytes


async def lock_activation(conn: asyncpg.Connection) -> None:
    """Serialise activations until the end of the transaction."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", ACTIVATION_LOCK_KEY)


async def save_bundle(
    conn: asyncpg.Connection,
    *,
    revision: str,
    sha256: str,
    status: BundleState,
    manifest: bytes,
    archive: bytes,
    report: RegoTestSummary,
    actor: str,
    now: datetime,
) -> BundleRead | None:
    """Insert a bundle, or replace a rejected one of the same revision; None when the
    revision is held by a bundle that was not rejected."""
    row = await conn.fetchrow(
        f"""INSERT INTO policy_bundles
              (revision, sha256, status, manifest, archive, test_report, uploaded_by, uploaded_at)
            VALUES ($1, $2, $3, $4::jsonb, $5, $6::jsonb, $7, $8)
            ON CONFLICT (revision) DO UPDATE
              SET sha256 = EXCLUDED.sha256, status = EXCLUDED.status,
                  manifest = EXCLUDED.manifest, archive = EXCLUDED.archive,
                  test_report = EXCLUDED.test_report, uploaded_by = EXCLUDED.uploaded_by,
                  uploaded_at = EXCLUDED.uploaded_at
              WHERE policy_bundles.status = 'rejected'
            RETURNING {_COLUMNS}""",
        revision,
        sha256,
        status,
        manifest.decode("utf-8"),
        archive,
        msgspec.json.encode(report).decode(),
        actor,
        now,
    )
    return None if row is None else _read(row)


async def find_bundle(
    conn: asyncpg.Connection | asyncpg.Pool, revision: str, *, for_update: bool = False
) -> BundleRead | None:
    """One bundle by revision (locked for update when asked)."""
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM policy_bundles WHERE revision = $1{lock}", revision
    )
    return None if row is None else _read(row)


async def select_bundles(conn: asyncpg.Connection | asyncpg.Pool) -> list[BundleRead]:
    """Every bundle, newest upload first (archives are not read)."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM policy_bundles ORDER BY uploaded_at DESC, revision"
    )
    return [_read(row) for row in rows]


async def active_bundle(conn: asyncpg.Connection | asyncpg.Pool) -> BundleRead | None:
    """The active bundle's row, if any."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM policy_bundles WHERE status = 'active'")
    return None if row is None else _read(row)


async def active_archive(conn: asyncpg.Connection | asyncpg.Pool) -> StoredBundle | None:
    """The active bundle's archive, if any."""
    row = await conn.fetchrow(
        "SELECT revision, sha256, archive FROM policy_bundles WHERE status = 'active'"
    )
    if row is None:
        return None
    return StoredBundle(
        revision=row["revision"], sha256=row["sha256"], archive=bytes(row["archive"])
    )


async def active_revision(conn: asyncpg.Connection | asyncpg.Pool) -> str | None:
    """Only the active revision: the watcher's cheap periodic check."""
    value = await conn.fetchval("SELECT revision FROM policy_bundles WHERE status = 'active'")
    return None if value is None else str(value)


async def retire_active(conn: asyncpg.Connection) -> str | None:
    """Mark the active bundle retired; returns its revision (None when none was active)."""
    value = await conn.fetchval(
        "UPDATE policy_bundles SET status = 'retired' WHERE status = 'active' RETURNING revision"
    )
    return None if value is None else str(value)


async def mark_active(
    conn: asyncpg.Connection, revision: str, *, actor: str, now: datetime
) -> BundleRead:
    """Mark one bundle active, recording when and by whom."""
    row = await conn.fetchrow(
        f"""UPDATE policy_bundles
            SET status = 'active', activated_at = $2, activated_by = $3
            WHERE revision = $1 RETURNING {_COLUMNS}""",
        revision,
        now,
        actor,
    )
    return _read(row)


def _read(row: Mapping[str, Any]) -> BundleRead:
    manifest = msgspec.json.decode(row["manifest"], type=BundleManifest)
    report = row["test_report"]
    return BundleRead(
        revision=row["revision"],
        sha256=row["sha256"],
        status=row["status"],
        roots=manifest.roots,
        uploaded_at=row["uploaded_at"],
        uploaded_by=row["uploaded_by"],
        activated_at=row["activated_at"],
        activated_by=row["activated_by"],
        tests=None if report is None else msgspec.json.decode(report, type=RegoTestSummary),
    )
