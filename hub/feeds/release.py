"""Releasing a page of feed rows: one policy decision per distinct verdict, not per item.

Rows that agree on everything `hub/release/decision` may consult (the release cache key:
recipient, purpose, data class, camera, jurisdiction, set of labels; policies/README.md,
"Caching") share one decision. Its logged input is that coarse record plus `event_ids`, the
events it covered, so "why was event X released to agency Y" is one indexed look-up in the
decision log (`/v1/decisions?event_id=X`), and the decision log writes a record per verdict
instead of one per item. Each item still carries the decision id that released it, and the
redactions are applied to each full record.
"""

import asyncio
from dataclasses import dataclass
from typing import Any

import msgspec

from hub.feeds.repository import FeedRow
from hub.feeds.schemas import FeedItem
from hub.policy.guard import Decider
from hub.policy.redaction import (
    RedactionPlan,
    apply_plan,
    plan_redactions,
    recipient_hash_key,
)
from hub.policy.release import release_cache_key
from hub.policy.schemas import Recipient, ReleaseInput, ReleaseResult

RELEASE_ENTRYPOINT = "hub/release/decision"
DATA_CLASS = "detection_event"
_ANY = Recipient(id="", kind="agency")  # the grouping fallback's key needs one recipient
# Rows opened or redacted between two returns to the event loop. A page's 100 rows at once
# held its API process's loop for 2-3 ms (the 90th to 99th percentile of metered page steps
# beside ingest, bench/README.md, seventeenth session), and an ingest batch queued behind a
# few pages' steps waited for their sum.
YIELD_EVERY_ROWS = 20


@dataclass(frozen=True, slots=True)
class Verdict:
    """One decision covering every row of a release key."""

    decision_id: str
    result: ReleaseResult
    error: str | None


@dataclass(frozen=True, slots=True)
class ReleasedBatch:
    """Rows released in order: items, withheld positions, the last position handled, and
    whether policy failed closed before the end (the rest waits for the next look)."""

    items: list[FeedItem]
    withheld: list[int]
    last: int
    stopped: bool


def coarse_record(
    *, camera_id: Any, jurisdiction: Any, labels: list[str], has_jurisdiction: bool = True
) -> dict[str, Any]:
    """The part of a record release policy may consult, as a record policy can read."""
    record: dict[str, Any] = {
        "camera_id": camera_id,
        "detections": [{"label": label} for label in labels],
    }
    if has_jurisdiction and jurisdiction is not None:
        record["jurisdiction"] = jurisdiction
    return record


def _labels(record: dict[str, Any]) -> list[str]:
    detections = record.get("detections")
    if not isinstance(detections, list):
        return []
    return sorted({str(d.get("label")) for d in detections if isinstance(d, dict)})


def _group_of(record: dict[str, Any]) -> Any:
    """What `release_cache_key` reads of a record (camera, jurisdiction, set of labels), as a
    cheap local key: records with equal keys have equal cache keys, and the one encoded
    cache key per group is then made from its first record. A value that is not plain text
    falls back to the encoded key itself."""
    camera, jurisdiction = record.get("camera_id"), record.get("jurisdiction")
    if isinstance(camera, str | None) and isinstance(jurisdiction, str | None):
        return (camera, jurisdiction, tuple(_labels(record)))
    return release_cache_key(_ANY, "", DATA_CLASS, record)


async def decide_groups(
    policy: Decider,
    *,
    recipient: Recipient,
    purpose: str,
    rows: list[FeedRow],
    records: list[dict[str, Any]],
) -> list[Verdict]:
    """One decision per distinct release key among the records (in first-seen order); the
    verdict of each record, aligned with `records`."""
    groups: dict[Any, list[int]] = {}
    for index, record in enumerate(records):
        groups.setdefault(_group_of(record), []).append(index)
    verdicts: list[Verdict | None] = [None] * len(records)
    for members in groups.values():
        first = records[members[0]]
        key = release_cache_key(recipient, purpose, DATA_CLASS, first)
        coarse = coarse_record(
            camera_id=first.get("camera_id"),
            jurisdiction=first.get("jurisdiction"),
            labels=_labels(first),
        )
        coarse["event_ids"] = [str(rows[i].event_id) for i in members]
        result, decision = await policy.decide(
            RELEASE_ENTRYPOINT,
            ReleaseInput(
                recipient=recipient, purpose=purpose, data_class=DATA_CLASS, record=coarse
            ),
            result_type=ReleaseResult,
            cache_key=key,
        )
        verdict = Verdict(decision_id=decision.decision_id, result=result, error=decision.error)
        for i in members:
            verdicts[i] = verdict
    return [v for v in verdicts if v is not None]


async def apply_verdicts(
    rows: list[FeedRow],
    records: list[dict[str, Any]],
    verdicts: list[Verdict],
    *,
    hash_key: bytes,
    after: int,
) -> ReleasedBatch:
    """Redact each allowed record, withhold the rest, stop at the first failed decision;
    letting the event loop go every `YIELD_EVERY_ROWS` rows."""
    items: list[FeedItem] = []
    withheld: list[int] = []
    last = after
    plans = _Plans(hash_key)
    for n, (row, record, verdict) in enumerate(zip(rows, records, verdicts, strict=True)):
        if n and not n % YIELD_EVERY_ROWS:
            await asyncio.sleep(0)
        if verdict.error is not None:
            return ReleasedBatch(items=items, withheld=withheld, last=last, stopped=True)
        if verdict.result.allow:
            plan = plans.of(verdict)
            # The record was decoded for this page alone: redact it in place.
            redacted = apply_plan(record, plan, manifest=False)  # items carry no manifest
            items.append(
                FeedItem(
                    seq=row.seq,
                    event_id=row.event_id,
                    decision_id=verdict.decision_id,
                    record=redacted.record,
                )
            )
        else:
            withheld.append(row.seq)
        last = row.seq
    return ReleasedBatch(items=items, withheld=withheld, last=last, stopped=False)


class _Plans:
    """Redaction plans of one batch, one per distinct list of redactions: a recipient's
    verdicts differ by camera and labels but usually redact alike (its profile), and a page
    of varied events has dozens of verdicts (planning each was a quarter of such a page)."""

    def __init__(self, hash_key: bytes) -> None:
        self._hash_key = hash_key
        self._by_decision: dict[str, RedactionPlan] = {}
        self._by_redactions: dict[bytes, RedactionPlan] = {}

    def of(self, verdict: Verdict) -> RedactionPlan:
        """The plan of a verdict's redactions."""
        plan = self._by_decision.get(verdict.decision_id)
        if plan is None:
            redactions = verdict.result.redactions
            key = msgspec.json.encode(redactions)
            plan = self._by_redactions.get(key)
            if plan is None:
                plan = self._by_redactions[key] = plan_redactions(
                    redactions, hash_key=self._hash_key
                )
            self._by_decision[verdict.decision_id] = plan
        return plan


def reader_hash_key(master: bytes, recipient: Recipient) -> bytes:
    """The recipient's hashing key (hashed values link within one recipient only)."""
    return recipient_hash_key(master, recipient.id)
