"""Error responses of the document: RFC 9457 problem+json, one shared response per status."""

from typing import Any

from hub.kit.problems import PROBLEM_MEDIA_TYPE
from hub.openapi.problems import codes_by_status

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details; `type` is stable per error (`/problems/<code>`), "
    "`code` repeats its last segment. Some problems add members (e.g. `decision_id` on a "
    "policy denial, `error`/`error_description` on OAuth errors, `checks` on /readyz).",
    "required": ["type", "title", "status", "code"],
    "properties": {
        "type": {"type": "string", "pattern": "^/problems/[a-z0-9_]+$"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "code": {"type": "string"},
        "decision_id": {"type": "string"},
        "error": {"type": "string"},
        "error_description": {"type": "string"},
    },
}

# Status -> (component name, what it means).
STATUSES: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "The request is malformed or a parameter is invalid."),
    401: ("Unauthenticated", "No credentials, or they could not be verified."),
    403: ("Forbidden", "Authenticated, but policy denies it (the problem names the decision)."),
    404: ("NotFound", "The resource does not exist or the caller may not know it does."),
    405: ("MethodNotAllowed", "The path exists, the method does not."),
    409: ("Conflict", "The request conflicts with what the hub already holds."),
    413: ("PayloadTooLarge", "The body is larger than the route accepts."),
    415: ("UnsupportedMediaType", "The body's content type is not one this route takes."),
    422: ("ValidationFailed", "The body parsed but does not match its schema."),
    429: ("TooManyRequests", "Rate limit or sign-in backoff; retry after `Retry-After` seconds."),
    500: ("Internal", "The hub failed; nothing about the cause is disclosed."),
    503: ("Unavailable", "A dependency is down or the hub sheds load; retry later."),
    507: ("InsufficientStorage", "The media volume is full; nothing was stored."),
}

_RETRY_AFTER = {"description": "Seconds to wait", "schema": {"type": "integer", "minimum": 0}}
_HEADERS: dict[int, dict[str, Any]] = {
    429: {
        "Retry-After": _RETRY_AFTER,
        "RateLimit-Limit": {"schema": {"type": "integer"}},
        "RateLimit-Remaining": {"schema": {"type": "integer"}},
        "RateLimit-Reset": {"schema": {"type": "integer"}},
    },
    503: {"Retry-After": _RETRY_AFTER},
}


def problem_responses() -> dict[str, Any]:
    """`components.responses`: one problem+json response per status, listing its types."""
    codes = codes_by_status()
    out: dict[str, Any] = {}
    for status, (name, meaning) in STATUSES.items():
        types = ", ".join(f"`/problems/{code}`" for code in codes.get(status, ()))
        response: dict[str, Any] = {
            "description": f"{meaning} Problem types: {types or 'none listed'}.",
            "content": {
                PROBLEM_MEDIA_TYPE: {
                    "schema": {"$ref": "#/components/schemas/Problem"},
                    "examples": {
                        code: {
                            "value": {
                                "type": f"/problems/{code}",
                                "code": code,
                                "status": status,
                                "title": name,
                            }
                        }
                        for code in codes.get(status, ())[:20]
                    },
                }
            },
        }
        if status in _HEADERS:
            response["headers"] = _HEADERS[status]
        out[name] = response
    return out


def response_ref(status: int) -> dict[str, str]:
    """A reference to the shared response of `status`."""
    return {"$ref": f"#/components/responses/{STATUSES[status][0]}"}
