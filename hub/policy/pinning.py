"""One request, one policy revision (ADR 0029).

A request makes several decisions (the route guard's authz, then ingest or release); a bundle
activated between two of them must not split the request across two revisions, or an event
could be admitted under one policy and judged under another. This middleware pins the engine
active when the request starts; `PolicyService.decide` uses it for the rest of the request.

Only HTTP requests are pinned. A WebSocket (the live feed) lives for hours and must follow
each new bundle as it arrives: it re-checks its access on every revision change and decides
each frame on its own.
"""

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from hub.policy.service import PolicyService


class PolicyPinMiddleware:
    """ASGI middleware: every decision inside one HTTP request uses one engine."""

    def __init__(self, app: ASGIApp, *, policy: PolicyService) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request with the active engine pinned."""
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        with self.policy.pinned():
            await self.app(scope, receive, send)
