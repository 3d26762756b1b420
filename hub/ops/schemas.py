"""Structs the operations routes answer with."""

from uuid import UUID

import msgspec


class DeliveryPreview(msgspec.Struct, frozen=True, kw_only=True):
    """What an operator may see of a delivery: ids, status and counts, never the record.

    Operators run the pipes, they are not recipients: the record as an agency would get it
    is the agency's, so it is not shown here (a compliance officer looks the release up
    through `decision_id`)."""

    delivery_id: UUID
    agency: str
    status: str
    attempts: int
    last_error: str | None
    event_id: UUID | None
    camera_id: str | None
    detections: dict[str, int]
    media: int
    decision_id: str | None
