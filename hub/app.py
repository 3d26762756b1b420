"""create_app(settings) -> Litestar: lifespan, routers, error handling, OpenAPI."""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware

from hub import health
from hub.audit.routes import build_router as audit_router
from hub.delivery.routes import build_router as delivery_router
from hub.feeds.routes import build_router as feeds_router
from hub.feeds.soap import build_router as soap_feed_router
from hub.identity.mtls import MtlsConfig, MtlsMiddleware
from hub.identity.oauth.routes import build_router as identity_router
from hub.identity.ratelimit import rate_limit_middleware
from hub.identity.routes import build_router as cameras_router
from hub.incidents.holds.routes import build_router as holds_router
from hub.incidents.routes import build_router as incidents_router
from hub.ingest.routes import build_router as edge_router
from hub.kit.logging import configure_logging
from hub.kit.problems import EXCEPTION_HANDLERS
from hub.observability import ObservabilityKit
from hub.observability.drain import ConnectionRecycler
from hub.observability.middleware import ObservabilityMiddleware
from hub.observability.routes import build_router as observability_router
from hub.openapi import openapi_config, schema_assets_router
from hub.ops.routes import build_router as ops_router
from hub.policy.bundles.routes import build_router as bundles_router
from hub.policy.decision_routes import build_router as decisions_router
from hub.policy.guard import policy_guard
from hub.policy.pinning import PolicyPinMiddleware
from hub.retention.routes import build_router as retention_router
from hub.runtime import (
    Services,
    build_services,
    start_policy,
    start_services,
    stop_policy,
    stop_services,
)
from hub.settings import Settings, load_settings


def tune_gc() -> None:
    """Keep garbage collection off the request path's tail latency.

    Start-up leaves ~80k long-lived objects (app, routes, schemas); without freezing them
    every full collection walks them all (tens of ms, measured by bench/ingest.py). A larger
    young generation makes collections rarer; request garbage is mostly acyclic anyway.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> Litestar:
    """The hub's HTTP API for these settings (or the environment's)."""
    settings = settings or load_settings()
    configure_logging(settings)
    services = services or build_services(settings)
    observability = ObservabilityKit(settings, service="hub-api")
    observability.start_process(decision_log_capacity=settings.decision_log_buffer)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await start_services(services)
        watcher = await start_policy(services, role="api")
        await observability.start()
        # SIGTERM: /readyz turns 503 for the grace period, then uvicorn drains and stops.
        observability.drain.install(grace_seconds=settings.shutdown_grace_seconds)
        tune_gc()
        try:
            yield
        finally:
            observability.drain.uninstall()
            await observability.stop()
            await stop_policy(services, watcher)
            await stop_services(services)

    def provide_services(state: State) -> Services:
        return services

    return Litestar(
        route_handlers=[
            health.router,
            edge_router(settings),
            bundles_router(settings),
            delivery_router(),
            identity_router(),
            cameras_router(),
            feeds_router(services.feeds.gate),
            soap_feed_router(settings, services.feeds.gate),
            retention_router(),
            holds_router(),
            audit_router(),
            decisions_router(),
            incidents_router(),
            ops_router(),
            *observability_router(observability),
            schema_assets_router(),
        ],
        dependencies={"services": Provide(provide_services, sync_to_thread=False)},
        # Every route is authenticated and decided by policy unless marked public.
        guards=[policy_guard],
        # mTLS prefixes refuse a request without a verified client certificate; then the
        # per-client, per-route rate limit (both run after routing, before the guard).
        middleware=[
            # Outermost: times and traces every request, including those refused below.
            DefineMiddleware(
                ObservabilityMiddleware,
                metrics=observability.metrics,
                drain=observability.drain,
                recycler=ConnectionRecycler(
                    limit=settings.api_keepalive_requests,
                    drain=observability.drain,
                    shared=settings.api_workers > 1,
                ),
            ),
            # One request decides with one policy revision, even across a bundle swap.
            DefineMiddleware(PolicyPinMiddleware, policy=services.policy),
            DefineMiddleware(MtlsMiddleware, config=MtlsConfig.from_settings(settings)),
            rate_limit_middleware(services, revision=lambda: services.policy.revision),
        ],
        state=State({"guard_deps": services, "drain": observability.drain}),
        exception_handlers=EXCEPTION_HANDLERS,
        # Logging is the hub's (hub/kit/logging.py, JSON); Litestar must not reconfigure root.
        logging_config=None,
        lifespan=[lifespan],
        request_max_body_size=settings.max_body_bytes,
        # The finished contract (problem+json errors, security, raw bodies) and a docs page
        # whose assets the hub serves itself (hub/openapi/).
        openapi_config=openapi_config(settings),
        debug=False,
    )
