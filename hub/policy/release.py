"""`release()`: the only way data leaves the hub. It asks `hub/release/decision`, applies the
redactions and hands back the record with its decision id and a manifest of what changed.

A denied release returns no record at all. Media are released through `release_media`,
which blurs the regions the decision names; an image that cannot be processed is withheld.
"""

from typing import Any

import msgspec

from hub.contracts.detection_v1 import Detection
from hub.policy.guard import Decider
from hub.policy.media import MediaError, blur_regions
from hub.policy.redaction import AppliedRedaction, apply_redactions, recipient_hash_key
from hub.policy.schemas import MediaObligation, Recipient, ReleaseInput, ReleaseResult


class Released(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of one release: the redacted record (None when denied) and why."""

    decision_id: str
    allowed: bool
    reason: str
    record: dict[str, Any] | None
    manifest: list[AppliedRedaction]
    media: list[MediaObligation]
    # Set when policy failed closed (no bundle, evaluation error): a denial that may well
    # turn into a release once policy works again, so callers retry instead of giving up.
    error: str | None = None


async def release(
    decider: Decider,
    *,
    recipient: Recipient,
    purpose: str,
    data_class: str,
    record: dict[str, Any],
    hash_master_key: bytes,
    cacheable: bool = False,
) -> Released:
    """Decide and redact one record for one recipient and purpose.

    `cacheable` lets the policy service reuse an evaluation for records that agree on every
    field release policy may consult (see `release_cache_key`); each release still gets its
    own decision id and log record.
    """
    policy_input = ReleaseInput(
        recipient=recipient, purpose=purpose, data_class=data_class, record=record
    )
    key = release_cache_key(recipient, purpose, data_class, record) if cacheable else None
    result, decision = await decider.decide(
        "hub/release/decision", policy_input, result_type=ReleaseResult, cache_key=key
    )
    if not result.allow:
        return Released(
            decision_id=decision.decision_id,
            allowed=False,
            reason=result.reason,
            record=None,
            manifest=[],
            media=[],
            error=decision.error,
        )
    key = recipient_hash_key(hash_master_key, recipient.id)
    redacted = apply_redactions(record, result.redactions, hash_key=key)
    return Released(
        decision_id=decision.decision_id,
        allowed=True,
        reason=result.reason,
        record=redacted.record,
        manifest=redacted.manifest,
        media=result.media,
    )


def release_cache_key(
    recipient: Recipient, purpose: str, data_class: str, record: dict[str, Any]
) -> bytes:
    """What a release decision may depend on (policies/README.md, "Caching"): the recipient
    as registered, purpose, data class, and of the record only its camera, jurisdiction and
    set of detection labels. Rules on other record fields would be cached wrongly."""
    detections = record.get("detections")
    labels = sorted(
        {str(d.get("label")) for d in detections if isinstance(d, dict)}
        if isinstance(detections, list)
        else set()
    )
    return msgspec.json.encode(
        [
            recipient,
            purpose,
            data_class,
            record.get("camera_id"),
            record.get("jurisdiction"),
            labels,
        ]
    )


def release_media(
    released: Released, *, image: bytes, content_type: str, detections: list[Detection]
) -> bytes | None:
    """The image as this release may show it (regions blurred), or None when withheld."""
    if not released.allowed:
        return None
    classes = {c for obligation in released.media for c in obligation.classes}
    boxes = [d.box for d in detections if d.label in classes]
    try:
        return blur_regions(image, boxes, content_type=content_type) if boxes else image
    except MediaError:
        return None
