"""The policy guard: every HTTP request is authenticated, then `hub/authz/decision` decides.

It runs on every route except those marked `opt={"public": True}` (health probes, problem
types). A deny is a 403 problem carrying the decision id, so the caller can quote it and an
officer can look the decision up. The subject and decision id are left on the connection
state for handlers (`current_subject`, `current_decision_id`).
"""

from typing import Any, Protocol, TypeVar

import msgspec
from litestar.connection import ASGIConnection, Request
from litestar.handlers.base import BaseRouteHandler

from hub.identity.authn import AuthnDeps, IncomingRequest, authenticate
from hub.identity.mtls import CLIENT_CERT_KEY
from hub.identity.schemas import Subject
from hub.kit.clock import utcnow
from hub.kit.errors import AuthenticationError, ForbiddenError
from hub.policy.schemas import AuthzInput, AuthzResult, DecisionRecord, RequestInfo

T = TypeVar("T", bound=msgspec.Struct)

SUBJECT_KEY = "hub_subject"
OPENAPI_PREFIX = "/schema"  # the API's own description is public
DECISION_KEY = "hub_authz_decision_id"


class Decider(Protocol):
    """What the guard needs from the policy service."""

    async def decide(
        self,
        entrypoint: str,
        input: msgspec.Struct,
        *,
        result_type: type[T],
        cache_key: bytes | None = None,
    ) -> tuple[T, DecisionRecord]:
        """Evaluate an entrypoint, fail closed, log the decision."""
        ...


class GuardDeps(Protocol):
    """What the app hands the guard (the process's services)."""

    @property
    def authn(self) -> AuthnDeps:
        """Authentication collaborators."""
        ...

    @property
    def policy(self) -> Decider:
        """The policy service."""
        ...

    @property
    def public_base_url(self) -> str:
        """The base URL edge nodes sign, or empty for "as received"."""
        ...


async def policy_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Authenticate and authorise one request (Litestar guard)."""
    if handler.opt.get("public") or connection.url.path.startswith(OPENAPI_PREFIX):
        return
    deps: GuardDeps = connection.app.state["guard_deps"]
    subject = await authenticate(deps.authn, _incoming(connection, deps.public_base_url))
    info = RequestInfo(
        method=str(connection.scope.get("method", "GET")),
        route=connection.scope.get("path_template", connection.url.path),
        path=connection.url.path,
        resource={k: str(v) for k, v in connection.path_params.items()},
    )
    # The default bundle's authz reads subject and request, not time (policies/README.md),
    # so answers are cached per bundle on those two; each request still gets its own record.
    result, record = await deps.policy.decide(
        "hub/authz/decision",
        AuthzInput(subject=subject, request=info, time=utcnow()),
        result_type=AuthzResult,
        cache_key=msgspec.json.encode((subject, info)),
    )
    if not result.allow:
        raise ForbiddenError(
            result.reason, code="policy_denied", extra={"decision_id": record.decision_id}
        )
    connection.state[SUBJECT_KEY] = subject
    connection.state[DECISION_KEY] = record.decision_id


def current_subject(connection: ASGIConnection[Any, Any, Any, Any]) -> Subject:
    """The subject the guard authenticated for this request."""
    subject = connection.state.get(SUBJECT_KEY)
    if not isinstance(subject, Subject):
        raise AuthenticationError("request was not authenticated", code="credentials_missing")
    return subject


def current_decision_id(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The id of the authz decision that let this request through."""
    return str(connection.state.get(DECISION_KEY, ""))


def _incoming(connection: ASGIConnection[Any, Any, Any, Any], base: str) -> IncomingRequest:
    url = connection.url
    target = (
        f"{base.rstrip('/')}{url.path}{'?' + url.query if url.query else ''}" if base else str(url)
    )

    async def read_body() -> bytes:
        if not isinstance(connection, Request):
            return b""
        return await connection.body()

    return IncomingRequest(
        method=str(connection.scope.get("method", "GET")),
        url=target,
        headers=connection.headers,
        read_body=read_body,
        client_cert=(connection.scope.get("state") or {}).get(CLIENT_CERT_KEY),
    )
