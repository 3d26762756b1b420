"""The hub's one exception tree; every domain error derives from `HubError`.

Each error carries an HTTP status and a stable `code` that becomes the RFC 9457 problem
`type` (``/problems/<code>``), so clients can branch on it across releases.
"""


class HubError(Exception):
    """Base of every error the hub raises on purpose."""

    status: int = 500
    code: str = "internal"
    title: str = "Internal error"

    def __init__(
        self, detail: str, *, code: str | None = None, extra: dict[str, object] | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code  # a finer, still stable, code within the same status
        self.extra = extra or {}


class BadRequestError(HubError):
    """The request cannot be understood (malformed syntax)."""

    status = 400
    code = "bad_request"
    title = "Bad request"


class AuthenticationError(HubError):
    """The caller could not be identified (missing, wrong or replayed credentials)."""

    status = 401
    code = "unauthenticated"
    title = "Authentication failed"


class ForbiddenError(HubError):
    """The caller is known but not allowed to do this."""

    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFoundError(HubError):
    """The named resource does not exist (or the caller may not know it does)."""

    status = 404
    code = "not_found"
    title = "Not found"


class ConflictError(HubError):
    """The request conflicts with what the hub already holds."""

    status = 409
    code = "conflict"
    title = "Conflict"


class PayloadTooLargeError(HubError):
    """The body is larger than the configured limit."""

    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class UnsupportedMediaTypeError(HubError):
    """The body's content type is not one this route takes."""

    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class ValidationError(HubError):
    """The body parsed but does not match the schema; `detail` names the field."""

    status = 422
    code = "validation_failed"
    title = "Validation failed"


class UnavailableError(HubError):
    """A dependency is down or the hub is shedding load; retry later."""

    status = 503
    code = "unavailable"
    title = "Service unavailable"

    def __init__(self, detail: str, *, retry_after: int = 5) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
