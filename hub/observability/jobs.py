"""arq job of observability: gauges that only the ledger and the breakers know (dead letters,
circuit states), refreshed by one worker at a time."""

from typing import Any

from hub.delivery.agencies import agency_health
from hub.observability.metrics import default_metrics
from hub.runtime import Services

BREAKER_STATES = ("closed", "open", "half_open")


async def refresh_gauges_job(ctx: dict[str, Any]) -> dict[str, int]:
    """Set `hub_delivery_dead_letters` and `hub_delivery_circuit_state` per agency."""
    services: Services = ctx["services"]
    metrics = default_metrics()
    health = await agency_health(services.db, services.delivery.breaker)
    for item in health:
        name = item.agency.name
        metrics.dead_letters.labels(name).set(item.counts.get("dead", 0))
        for state in BREAKER_STATES:
            metrics.circuit_state.labels(name, state).set(1 if item.breaker.state == state else 0)
    return {"agencies": len(health)}
