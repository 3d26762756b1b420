"""One request, one policy revision.

A request makes several decisions (the route guard's authz, then ingest or release); a bundle
activated between two of them must not split the request across two revisions, or an event
could be admitted under one policy and judged under another. This middleware pins the engine
active when the request starts; `PolicyService.decide` uses it for the rest of the request.
"""

from litestar.types import ASGIApp, Receive, Scope, Send

from hub.policy.service import PolicyService


class PolicyPinMiddleware:
    """ASGI middleware: every decision inside one HTTP or WebSocket request uses one engine."""

    def __init__(self, app: ASGIApp, *, policy: PolicyService) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request with the active engine pinned."""
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        with self.policy.pinned():
            await self.app(scope, receive, send)
