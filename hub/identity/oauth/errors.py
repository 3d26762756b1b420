"""OAuth 2.0 errors (RFC 6749 §5.2) as hub problems that also carry `error`."""

from hub.kit.errors import HubError

# The one answer to every failed password grant: wrong name, password or TOTP code, a
# disabled account or a replayed code all read the same, so none of them is an oracle.
SIGNIN_FAILED = "wrong username, password or TOTP code"


class OAuthError(HubError):
    """A token or revocation request refused; `error` is the RFC 6749 error code."""

    status = 400
    code = "oauth_error"
    title = "OAuth request refused"

    def __init__(
        self, error: str, detail: str, *, status: int = 400, code: str | None = None
    ) -> None:
        super().__init__(
            detail,
            code=code or f"oauth_{error}",
            extra={"error": error, "error_description": detail},
        )
        self.status = status


class SigninThrottledError(OAuthError):
    """Too many failed sign-ins for this account: wait `retry_after` seconds (429)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "invalid_grant",
            f"too many failed sign-ins for this account; retry in {retry_after} s",
            status=429,
            code="signin_throttled",
        )
        self.retry_after = retry_after
