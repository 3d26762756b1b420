"""`release()`: the only way data leaves the hub. It asks `hub/release/decision`, applies the
redactions and hands back the record with its decision id and a manifest of what changed.

A denied release returns no record at all. Images are released through `release_media`:
redaction is a property of the image, not of the event that asked for it, so it blurs every
region known on the image (from every event that references it and from the hub's own scan)
of each class the recipient's releases say to blur. What cannot be accounted for (no
releasing decision, a policy error, an image not scanned yet for a recipient that blurs, an
image that cannot be decoded) is withheld, never sent in the clear.
"""

import asyncio
from collections.abc import Sequence
from typing import Any

import msgspec

from hub.kit.errors import HubError, UnavailableError
from hub.media import KnownImage, MediaNotScannedError
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
    copy: bool = True,
) -> Released:
    """Decide and redact one record for one recipient and purpose.

    `cacheable` lets the policy service reuse an evaluation for records that agree on every
    field release policy may consult (see `release_cache_key`); each release still gets its
    own decision id and log record. `copy=False` redacts `record` itself, for a caller that
    decoded it for this one release (the decision log has its own encoded copy by then).
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
    redacted = apply_redactions(record, result.redactions, hash_key=key, copy=copy)
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


async def release_media(
    decisions: Sequence[Released], *, image: KnownImage, data: bytes | None
) -> bytes | None:
    """The image as the recipient may see it, or None when withheld; the pixel work runs in
    a worker thread, off the event loop.

    `decisions` are the recipient's releases (data class `snapshot`) of the events through
    which it asks for the image; one allowing release grants it, and the blur classes are
    the union of every allowing release's media obligations.
    """
    return await asyncio.to_thread(release_image, decisions, image=image, data=data)


def release_image(
    decisions: Sequence[Released], *, image: KnownImage, data: bytes | None
) -> bytes | None:
    """`release_media`'s work (blocking): blur the union of the image's regions of every class
    the allowing releases name; None when anything is unaccounted for.

    The image is always decoded and encoded again, blurred or not: what leaves is pixels
    only, never metadata the uploader put in the file (EXIF capture time, GPS, text chunks),
    which no release policy sees or redacts.
    """
    if data is None or not decisions or any(d.error is not None for d in decisions):
        return None
    allowed = [d for d in decisions if d.allowed]
    if not allowed:
        return None
    classes = {c for d in allowed for obligation in d.media for c in obligation.classes}
    if classes and not image.scanned:
        return None  # the hub has not looked for what the edge may have missed
    boxes = [region.box for region in image.regions if region.label in classes]
    try:
        return blur_regions(data, boxes, content_type=image.content_type)
    except MediaError:
        return None


def withheld_for_now(decisions: Sequence[Released], *, image: KnownImage) -> HubError | None:
    """Why a withheld image may be released later (503 for the caller to raise): policy
    failed closed, or a release allows it and only the hub's scan is missing. None: it is
    withheld for good, and the caller answers as if it did not exist."""
    if any(d.error is not None for d in decisions):
        return UnavailableError("policy is unavailable; the image cannot be released now")
    classes = {c for d in decisions if d.allowed for o in d.media for c in o.classes}
    if classes and image.pending:
        return MediaNotScannedError("the hub has not scanned this image yet")
    return None
