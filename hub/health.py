"""Liveness and readiness: `/healthz` (the process answers) and `/readyz` (it can work)."""

from typing import Any

import msgspec
from litestar import Response, Router, get
from litestar.datastructures import State

from hub.kit.errors import UnavailableError
from hub.kit.problems import PROBLEM_MEDIA_TYPE, problem_type
from hub.runtime import ServicesDep


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    """Each dependency and whether it answered."""

    status: str
    checks: dict[str, str]


@get("/healthz", sync_to_thread=False, include_in_schema=True)
def healthz() -> dict[str, str]:
    """Alive: the process serves requests (does not look at dependencies)."""
    return {"status": "ok"}


@get("/readyz")
async def readyz(services: ServicesDep, state: State) -> Response[Any]:
    """Ready: PostgreSQL and Redis answer and a policy is loaded; 503 naming what failed
    (and at once while shutting down, so load balancers stop sending work)."""
    checks: dict[str, str] = {}
    drain = state.get("drain")
    if drain is not None and drain.draining:
        checks["shutdown"] = "failing: draining for shutdown"
        return _not_ready(checks)
    for name, probe in (("postgres", services.db.ping), ("redis", services.redis.ping)):
        try:
            await probe()
            checks[name] = "ok"
        except UnavailableError as exc:
            checks[name] = f"failing: {exc.detail}"
    revision = services.policy.revision
    checks["policy"] = f"ok: bundle {revision}" if revision else "failing: no policy bundle loaded"
    if all(value.startswith("ok") for value in checks.values()):
        return Response(Readiness(status="ready", checks=checks))
    return _not_ready(checks)


def _not_ready(checks: dict[str, str]) -> Response[Any]:
    failing = [name for name, value in checks.items() if not value.startswith("ok")]
    body = {
        "type": problem_type("not_ready"),
        "title": "Not ready",
        "status": 503,
        "code": "not_ready",
        "detail": f"not ready: {', '.join(failing)}",
        "checks": checks,
    }
    return Response(
        body, status_code=503, media_type=PROBLEM_MEDIA_TYPE, headers={"Retry-After": "5"}
    )


# Probes answer without credentials: the guard skips routes marked public.
router = Router(path="/", route_handlers=[healthz, readyz], tags=["health"], opt={"public": True})
