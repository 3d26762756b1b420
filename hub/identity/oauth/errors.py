"""OAuth 2.0 errors (RFC 6749 §5.2) as hub problems that also carry `error`."""

from hub.kit.errors import HubError


class OAuthError(HubError):
    """A token or revocation request refused; `error` is the RFC 6749 error code."""

    status = 400
    code = "oauth_error"
    title = "OAuth request refused"

    def __init__(self, error: str, detail: str, *, status: int = 400) -> None:
        super().__init__(
            detail,
            code=f"oauth_{error}",
            extra={"error": error, "error_description": detail},
        )
        self.status = status
