"""Operations routes under `/v1/ops` (operators and admins; the overview also officers)."""

from typing import Any
from uuid import UUID

from litestar import Request, Router, get
from litestar.params import FromPath

from hub.kit.clock import utcnow
from hub.ops.overview import Overview, read_overview
from hub.ops.schemas import DeliveryPreview
from hub.ops.service import preview_delivery
from hub.policy.guard import current_decision_id, current_subject
from hub.runtime import ServicesDep


async def get_overview(services: ServicesDep) -> Overview:
    """Events, deliveries by agency, backlog, dead letters, open incidents, active policy."""
    return await read_overview(
        services.db,
        services.delivery.breaker,
        revision=services.policy.revision,
        now=utcnow(),
    )


async def get_preview(
    request: Request[Any, Any, Any], services: ServicesDep, delivery_id: FromPath[UUID]
) -> DeliveryPreview:
    """A delivery's ids, status and detection counts; never the record (operators are not
    its recipient)."""
    subject = current_subject(request)
    return await preview_delivery(
        services.db,
        delivery_id,
        actor=f"{subject.kind}:{subject.id}",
        decision_id=current_decision_id(request) or None,
    )


def build_router() -> Router:
    """The operations router."""
    return Router(
        path="/v1/ops",
        tags=["ops"],
        route_handlers=[
            get("/overview")(get_overview),
            get("/deliveries/{delivery_id:uuid}/preview")(get_preview),
        ],
    )
