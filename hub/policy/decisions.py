"""Looking up logged policy decisions and replaying them under the active bundle.

The log holds each input as `system/log/mask` left it, so a replay evaluates the masked
input: a rule that reads a masked field may answer differently, and the difference is shown
for what it is. A replay is itself a decision (new id, logged) and is audited.
"""

from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from hub.audit import AuditAppender, AuditEntry
from hub.kit.db import Database
from hub.kit.errors import NotFoundError
from hub.policy.bundles.archive import read_archive, read_bundle_dir
from hub.policy.guard import Decider
from hub.policy.schemas import (
    AuthzResult,
    IngestInput,
    IngestResult,
    ReleaseResult,
    RetentionResult,
)

RESULT_TYPES: dict[str, type[msgspec.Struct]] = {
    "hub/authz/decision": AuthzResult,
    "hub/ingest/decision": IngestResult,
    "hub/release/decision": ReleaseResult,
    "hub/retention/decision": RetentionResult,
}
SOURCE_SUFFIXES = (".rego", ".json", ".manifest")


class DecisionRead(msgspec.Struct, frozen=True, kw_only=True):
    """A logged decision: masked input, result, bundle revision, latency, error."""

    decision_id: str
    at: str
    entrypoint: str
    revision: str
    latency_us: int
    input: Any
    result: Any
    error: str | None = None


class Difference(msgspec.Struct, frozen=True, kw_only=True):
    """One JSON pointer whose value changed between the logged result and the replay."""

    path: str
    before: Any = None
    after: Any = None


class ReplayRead(msgspec.Struct, frozen=True, kw_only=True):
    """The logged decision beside its replay under the active bundle."""

    original: DecisionRead
    replay_decision_id: str
    replay_revision: str
    replay_result: Any
    replay_error: str | None
    same: bool
    differences: list[Difference]


class BundleSources(msgspec.Struct, frozen=True, kw_only=True):
    """The Rego modules and data files of one bundle revision, by path."""

    revision: str
    files: dict[str, str]


async def find_decision(db: Database, decision_id: str, *, stale_ok: bool = False) -> DecisionRead:
    """One logged decision; `NotFoundError` when it is unknown (or not yet flushed).

    `stale_ok` reads it on a replica within the lag bound (ADR 0016): fine for showing a
    decision, which is never changed once logged and is already flushed late; a replay,
    which writes an audit entry about what it read, reads the primary."""
    if not stale_ok:
        return await _find_decision(db.pool, decision_id)
    async with db.reader() as conn:
        return await _find_decision(conn, decision_id)


async def _find_decision(conn: asyncpg.Connection | asyncpg.Pool, decision_id: str) -> DecisionRead:
    row = await conn.fetchrow(
        """SELECT decision_id, at, entrypoint, revision, latency_us, input::text AS input,
                  result::text AS result, error
           FROM policy_decisions WHERE decision_id = $1""",
        decision_id,
    )
    if row is None:
        raise NotFoundError(f"no decision {decision_id}", code="decision_not_found")
    return _read(row)


async def decisions_for_event(db: Database, event_id: str) -> list[DecisionRead]:
    """The release decisions of one event: every delivery attempt's, and every feed page's
    shared decision that names it in `input.record.event_ids` (hub/feeds/release.py).

    On a replica within the lag bound (ADR 0016): the answer only explains past releases
    and nothing is written from it."""
    async with db.reader() as conn:
        return await _event_decisions(conn, event_id)


async def _event_decisions(conn: asyncpg.Connection, event_id: str) -> list[DecisionRead]:
    rows = await conn.fetch(
        """SELECT d.decision_id, d.at, d.entrypoint, d.revision, d.latency_us,
                  d.input::text AS input, d.result::text AS result, d.error
           FROM detection_event e
           JOIN delivery dl ON dl.event_pk = e.id AND dl.event_captured_at = e.captured_at
           JOIN delivery_attempt a ON a.delivery_id = dl.id
           JOIN policy_decisions d ON d.decision_id = a.decision_id
           WHERE e.event_id = $1::uuid
           UNION ALL
           SELECT d.decision_id, d.at, d.entrypoint, d.revision, d.latency_us,
                  d.input::text AS input, d.result::text AS result, d.error
           FROM policy_decisions d
           WHERE d.entrypoint = 'hub/release/decision' AND (d.input -> 'record') ? 'event_ids'
             AND (d.input -> 'record' -> 'event_ids') ? ($1::uuid)::text
           ORDER BY at DESC LIMIT 100""",
        event_id,
    )
    return [_read(row) for row in rows]


async def replay_decision(
    db: Database,
    policy: Decider,
    decision_id: str,
    *,
    audit: AuditAppender,
    actor: str,
    authz_decision_id: str | None,
) -> ReplayRead:
    """Evaluate a logged decision's (masked) input under the active bundle and diff it. The
    replay's audit entry is its only write, so it goes through the process's appender."""
    original = await find_decision(db, decision_id)
    result_type = RESULT_TYPES.get(original.entrypoint)
    if result_type is None or not isinstance(original.input, dict):
        raise NotFoundError(
            f"decisions of {original.entrypoint} cannot be replayed", code="decision_not_replayable"
        )
    result, record = await policy.decide(
        original.entrypoint, _replay_input(original), result_type=result_type
    )
    after = msgspec.to_builtins(result)
    differences = list(diff(original.result, after))
    await audit.append(
        _audit_entry(actor, original, record.decision_id, len(differences), authz_decision_id)
    )
    return ReplayRead(
        original=original,
        replay_decision_id=record.decision_id,
        replay_revision=record.revision,
        replay_result=after,
        replay_error=record.error,
        same=not differences,
        differences=differences,
    )


async def bundle_sources(db: Database, revision: str, *, default_dir: str) -> BundleSources:
    """The sources of a stored bundle, or of the default bundle folder for its revision."""
    row = await db.pool.fetchrow("SELECT archive FROM policy_bundles WHERE revision = $1", revision)
    if row is not None:
        files = read_archive(bytes(row["archive"])).files
    else:
        files = read_bundle_dir(Path(default_dir))
        manifest = msgspec.json.decode(files.get(".manifest", b"{}"), type=dict[str, Any])
        if manifest.get("revision") != revision:
            raise NotFoundError(f"no bundle {revision}", code="bundle_not_found")
    return BundleSources(
        revision=revision,
        files={
            name: data.decode("utf-8", errors="replace")
            for name, data in sorted(files.items())
            if name.endswith(SOURCE_SUFFIXES)
        },
    )


def diff(before: Any, after: Any, path: str = "") -> list[Difference]:
    """JSON pointers where two JSON values differ (objects by key, lists by index)."""
    if isinstance(before, dict) and isinstance(after, dict):
        found: list[Difference] = []
        for key in sorted(set(before) | set(after)):
            found += diff(before.get(key), after.get(key), f"{path}/{_escape(str(key))}")
        return found
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [
            d
            for i, (b, a) in enumerate(zip(before, after, strict=True))
            for d in diff(b, a, f"{path}/{i}")
        ]
    return [] if before == after else [Difference(path=path or "/", before=before, after=after)]


def _replay_input(original: DecisionRead) -> msgspec.Struct:
    """The logged input as a Struct `decide` can encode: typed for ingest (its fail-closed
    default needs the groups), field for field otherwise (masked values stay as logged)."""
    if original.entrypoint == "hub/ingest/decision":
        return msgspec.convert(original.input, IngestInput)
    fields = [(str(key), Any) for key in original.input]
    kind = msgspec.defstruct("ReplayInput", fields, kw_only=True, frozen=True)
    return msgspec.convert(original.input, kind)


def _audit_entry(
    actor: str,
    original: DecisionRead,
    replay_id: str,
    differences: int,
    authz_decision_id: str | None,
) -> AuditEntry:
    return AuditEntry(
        actor=actor,
        action="decision.replay",
        target=f"decision:{original.decision_id}",
        detail={
            "entrypoint": original.entrypoint,
            "revision": original.revision,
            "replay_decision_id": replay_id,
            "differences": differences,
        },
        decision_id=authz_decision_id,
    )


def _read(row: asyncpg.Record) -> DecisionRead:
    return DecisionRead(
        decision_id=row["decision_id"],
        at=row["at"].isoformat(),
        entrypoint=row["entrypoint"],
        revision=row["revision"],
        latency_us=row["latency_us"],
        input=msgspec.json.decode(row["input"]),
        result=msgspec.json.decode(row["result"]),
        error=row["error"],
    )


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")
