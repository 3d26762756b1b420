"""Use cases of the operations views that show something about single deliveries."""

from uuid import UUID

import msgspec

from hub.audit import AuditEntry, append_entry
from hub.kit.db import Database
from hub.kit.errors import NotFoundError
from hub.ops import repository
from hub.ops.schemas import DeliveryPreview


async def preview_delivery(
    db: Database, delivery_id: UUID, *, actor: str, decision_id: str | None
) -> DeliveryPreview:
    """A delivery's metadata for an operator, audited as a metadata view (no release)."""
    async with db.transaction() as conn:
        row = await repository.select_delivery_metadata(conn, delivery_id)
        if row is None:
            raise NotFoundError(f"no delivery {delivery_id}")
        preview = DeliveryPreview(
            delivery_id=row["id"],
            agency=row["agency"],
            status=row["status"],
            attempts=row["attempts"],
            last_error=row["last_error"],
            event_id=row["event_id"],
            camera_id=row["camera_id"],
            detections=msgspec.json.decode(row["detections"] or "{}", type=dict[str, int]),
            media=row["media"],
            decision_id=row["decision_id"],
        )
        await append_entry(conn, _viewed(preview, actor=actor, decision_id=decision_id))
    return preview


def _viewed(preview: DeliveryPreview, *, actor: str, decision_id: str | None) -> AuditEntry:
    """The audit entry of a metadata view: who looked, at which delivery, that no record
    was released."""
    return AuditEntry(
        actor=actor,
        action="ops.delivery.metadata",
        target=f"delivery:{preview.delivery_id}",
        decision_id=decision_id,
        detail={
            "agency": preview.agency,
            "event_id": None if preview.event_id is None else str(preview.event_id),
            "shown": "metadata",
            "released": False,
        },
    )
