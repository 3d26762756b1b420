"""SQL of agencies: their settings, status and what the worker needs to send."""

import json
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg

from hub.delivery.schemas import (
    Agency,
    AgencyCreate,
    AgencyRead,
    Subscription,
)

_AGENCY_COLUMNS = """id, name, adapter_kind, endpoint, config, status, purpose, sub_classes,
    sub_cameras, sub_min_confidence, jurisdictions, clearance, max_concurrency,
    rate_per_second, retry_schedule, ordering, paused_reason, paused_at, created_at"""


async def insert_agency(
    conn: asyncpg.Connection, *, agency_id: UUID, create: AgencyCreate, endpoint: str
) -> AgencyRead | None:
    """Insert an agency; None when the name is taken."""
    sub = create.subscription
    row = await conn.fetchrow(
        f"""INSERT INTO agency (id, name, adapter_kind, endpoint, config, purpose, sub_classes,
                sub_cameras, sub_min_confidence, jurisdictions, clearance, max_concurrency,
                rate_per_second, retry_schedule, ordering)
            VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
            ON CONFLICT (name) DO NOTHING
            RETURNING {_AGENCY_COLUMNS}""",
        agency_id,
        create.name,
        create.kind,
        endpoint,
        json.dumps(create.config),
        sub.purpose,
        sub.classes,
        sub.cameras,
        sub.min_confidence,
        create.jurisdictions,
        create.clearance,
        create.max_concurrency,
        create.rate_per_second,
        create.retry_schedule,
        create.ordering,
    )
    return None if row is None else _agency_read(row)


async def lock_agency_configs(conn: asyncpg.Connection) -> list[tuple[UUID, str, dict[str, Any]]]:
    """Every agency's id, adapter kind and stored configuration, locked for update."""
    rows = await conn.fetch("SELECT id, adapter_kind, config FROM agency ORDER BY name FOR UPDATE")
    return [(r["id"], r["adapter_kind"], json.loads(r["config"])) for r in rows]


async def update_agency_config(
    conn: asyncpg.Connection, agency_id: UUID, config: dict[str, Any]
) -> str:
    """Store an agency's (re-sealed) configuration; its name."""
    name: str = await conn.fetchval(
        "UPDATE agency SET config = $2::jsonb, updated_at = now() WHERE id = $1 RETURNING name",
        agency_id,
        json.dumps(config),
    )
    return name


async def select_agencies(conn: asyncpg.Connection) -> list[tuple[AgencyRead, Agency]]:
    """Every agency, as listed and as the worker uses it."""
    rows = await conn.fetch(f"SELECT {_AGENCY_COLUMNS} FROM agency ORDER BY name")
    return [(_agency_read(r), _agency(r)) for r in rows]


async def find_agency(conn: asyncpg.Connection, ref: str) -> tuple[AgencyRead, Agency] | None:
    """An agency by name or id."""
    row = await conn.fetchrow(
        f"SELECT {_AGENCY_COLUMNS} FROM agency WHERE name = $1 OR id::text = $1", ref
    )
    return None if row is None else (_agency_read(row), _agency(row))


async def update_agency_ordering(
    conn: asyncpg.Connection, agency_id: UUID, ordering: str
) -> AgencyRead:
    """Set an agency's ordering; the agency as it now is."""
    row = await conn.fetchrow(
        f"""UPDATE agency SET ordering = $2, updated_at = now() WHERE id = $1
            RETURNING {_AGENCY_COLUMNS}""",
        agency_id,
        ordering,
    )
    assert row is not None  # noqa: S101 - the caller found the agency in this transaction
    return _agency_read(row)


async def set_agency_status(
    conn: asyncpg.Connection,
    agency_id: UUID,
    *,
    status: str,
    reason: str | None,
    only_if: Sequence[str],
) -> AgencyRead | None:
    """Move an agency to `status` when it is in one of `only_if`; None when it was not."""
    row = await conn.fetchrow(
        f"""UPDATE agency SET status = $2, paused_reason = $3,
                paused_at = CASE WHEN $2 = 'paused' THEN now() ELSE NULL END, updated_at = now()
            WHERE id = $1 AND status = ANY($4::text[])
            RETURNING {_AGENCY_COLUMNS}""",
        agency_id,
        status,
        reason,
        list(only_if),
    )
    return None if row is None else _agency_read(row)


def _agency_read(row: asyncpg.Record) -> AgencyRead:
    return AgencyRead(
        id=row["id"],
        name=row["name"],
        kind=row["adapter_kind"],
        endpoint=row["endpoint"],
        status=row["status"],
        subscription=Subscription(
            classes=list(row["sub_classes"]),
            cameras=list(row["sub_cameras"]),
            min_confidence=round(float(row["sub_min_confidence"]), 6),
            purpose=row["purpose"],
        ),
        jurisdictions=list(row["jurisdictions"]),
        clearance=row["clearance"],
        max_concurrency=row["max_concurrency"],
        rate_per_second=float(row["rate_per_second"]),
        retry_schedule=_schedule(row),
        ordering=row["ordering"],
        paused_reason=row["paused_reason"],
        paused_at=row["paused_at"],
        created_at=row["created_at"],
    )


def _agency(row: asyncpg.Record) -> Agency:
    return Agency(
        id=row["id"],
        name=row["name"],
        kind=row["adapter_kind"],
        config=json.loads(row["config"]),
        status=row["status"],
        purpose=row["purpose"],
        jurisdictions=list(row["jurisdictions"]),
        clearance=row["clearance"],
        max_concurrency=row["max_concurrency"],
        rate_per_second=float(row["rate_per_second"]),
        retry_schedule=_schedule(row),
        ordering=row["ordering"],
    )


def _schedule(row: asyncpg.Record) -> list[float] | None:
    found = row["retry_schedule"]
    return None if found is None else [float(seconds) for seconds in found]


# Routing happens here, in one statement: each new event joins every agency whose
# subscription matches (empty list = everything). Paused agencies get rows too; they are
# delivered after resume. Sorted, so concurrent batches lock rows in one order. Each row keeps
