"""RFC 9457 problem details: the one way errors leave the hub over HTTP.

Every error has a stable `type` (`/problems/<code>`); no stack trace ever reaches a client.
"""

from http import HTTPStatus
from typing import Any

import asyncpg
import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.exceptions import ValidationException as LitestarValidationError
from litestar.types import ExceptionHandlersMap

from hub.kit.errors import HubError

PROBLEM_MEDIA_TYPE = "application/problem+json"

log = structlog.get_logger("hub.http")

# Codes for errors Litestar raises itself, by status.
_LITESTAR_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "unavailable",
}


class Problem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


def problem_type(code: str) -> str:
    """The stable type URI of a problem code."""
    return f"/problems/{code}"


def problem_response(
    *,
    status: int,
    code: str,
    title: str,
    detail: str | None,
    request: Request[Any, Any, Any],
    headers: dict[str, str] | None = None,
    extra: dict[str, object] | None = None,
) -> Response[bytes]:
    """Build the problem+json response for an error."""
    body: dict[str, object] = msgspec.to_builtins(
        Problem(
            type=problem_type(code),
            title=title,
            status=status,
            detail=detail,
            instance=request.url.path,
        )
    )
    body["code"] = code
    body.update(extra or {})
    return Response(
        content=msgspec.json.encode(body),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers or {},
    )


def handle_hub_error(request: Request[Any, Any, Any], exc: HubError) -> Response[bytes]:
    """HubError -> problem+json with its own status and code."""
    # 503s and throttled sign-ins (429) say when to come back.
    retry_after = getattr(exc, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if isinstance(retry_after, int) else None
    if exc.status >= 500:
        log.warning("request failed", code=exc.code, status=exc.status, path=request.url.path)
    return problem_response(
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        request=request,
        headers=headers,
        extra=exc.extra,
    )


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    """Litestar's own errors (unknown route, wrong method, bad parameter) as problems."""
    status = exc.status_code
    code = (
        "validation_failed"
        if isinstance(exc, LitestarValidationError)
        else _LITESTAR_CODES.get(status, "http_error")
    )
    headers = {
        k: v for k, v in (exc.headers or {}).items() if k.lower() in {"allow", "retry-after"}
    }
    return problem_response(
        status=status,
        code=code,
        title=_title(status),
        detail=str(exc.detail),
        request=request,
        headers=headers,
    )


def handle_dependency_down(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """A lost database connection, a refused connect or a pool timeout: retry later (503).

    The request's transaction (if any) was rolled back, so nothing was half written and the
    edge keeps its spool until a retry succeeds.
    """
    log.warning("dependency unavailable", path=request.url.path, error_type=type(exc).__name__)
    return _unavailable(request, "A backing service is not reachable; retry later.")


def handle_pooler_mismatch(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """A prepared statement missing or already there: a transaction pooler (PgBouncer) in
    front of the database while the statement cache is on. The request was rolled back; the
    client may retry (503), and the log names the setting an operator must change."""
    log.error(
        "prepared statement mismatch: behind a transaction pooler set"
        " HUB_DB_STATEMENT_CACHE_SIZE=0 (docs/deploy.md)",
        path=request.url.path,
        error_type=type(exc).__name__,
    )
    return _unavailable(request, "The database connection is misconfigured; retry later.")


def _unavailable(request: Request[Any, Any, Any], detail: str) -> Response[bytes]:
    """503 `unavailable`: the request was rolled back and may be retried in a few seconds."""
    return problem_response(
        status=503,
        code="unavailable",
        title="Service unavailable",
        detail=detail,
        request=request,
        headers={"Retry-After": "5"},
    )


def handle_unstorable_value(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """A value PostgreSQL refused (class 22: NUL in text, out of range, malformed uuid):
    the input's fault, so 422. Boundaries check these first; this is the net behind them."""
    log.warning("value refused by the database", path=request.url.path, error=type(exc).__name__)
    return problem_response(
        status=422,
        code="unstorable_value",
        title="Unprocessable value",
        detail="A value in the request cannot be stored (NUL character, number out of range "
        "or malformed identifier).",
        request=request,
    )


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """Anything else: log it with its traceback, tell the client only that it failed."""
    log.exception("unhandled error", path=request.url.path, error_type=type(exc).__name__)
    return problem_response(
        status=500,
        code="internal",
        title="Internal error",
        detail="The hub could not complete the request.",
        request=request,
    )


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


# Errors that mean "a dependency is down", not "the hub is broken".
DEPENDENCY_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)

EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    HubError: handle_hub_error,
    HTTPException: handle_http_exception,
    **dict.fromkeys(DEPENDENCY_ERRORS, handle_dependency_down),
    asyncpg.DataError: handle_unstorable_value,
    # What a transaction pooler does to named statements of a connection it reassigned.
    asyncpg.DuplicatePreparedStatementError: handle_pooler_mismatch,
    asyncpg.InvalidSQLStatementNameError: handle_pooler_mismatch,
    Exception: handle_unexpected,
}
