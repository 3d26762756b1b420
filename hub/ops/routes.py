"""Operations routes under `/v1/ops` (operators and admins; the overview also officers)."""

from uuid import UUID

from litestar import Router, get
from litestar.params import FromPath

from hub.delivery.kit import release_hash_key
from hub.kit.clock import utcnow
from hub.ops.overview import DeliveryPreview, Overview, preview_delivery, read_overview
from hub.runtime import ServicesDep


async def get_overview(services: ServicesDep) -> Overview:
    """Events, deliveries by agency, backlog, dead letters, open incidents, active policy."""
    return await read_overview(
        services.db,
        services.delivery.breaker,
        revision=services.policy.revision,
        now=utcnow(),
    )


async def get_preview(services: ServicesDep, delivery_id: FromPath[UUID]) -> DeliveryPreview:
    """A delivery's event as its agency would receive it now (redacted by release policy)."""
    return await preview_delivery(
        services.db,
        services.policy,
        delivery_id,
        hash_key=release_hash_key(services.settings),
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
