"""The console's only way to the hub: its REST API, called with the officer's own token.

Errors become four kinds the pages show plainly: the hub cannot be reached, the session has
expired (401), policy denied the request (403, with the decision id), or another problem.
"""

from typing import Any

import httpx

TIMEOUT = httpx.Timeout(20.0, connect=5.0)


class ConsoleError(Exception):
    """Something the page should show instead of its content."""


class HubUnreachableError(ConsoleError):
    """No answer from the hub (down, wrong URL, network)."""


class SessionExpiredError(ConsoleError):
    """The token is missing, expired or revoked (401): log in again."""


class PermissionDeniedError(ConsoleError):
    """Policy said no (403); `decision_id` lets an officer look the decision up."""

    def __init__(self, detail: str, decision_id: str | None) -> None:
        super().__init__(detail)
        self.decision_id = decision_id


class ApiError(ConsoleError):
    """Any other problem answer (problem+json `detail` and `code`)."""

    def __init__(self, status: int, detail: str, code: str | None = None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.code = code


class HubClient:
    """Synchronous calls to the hub API as one logged-in user."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token

    def get(self, path: str, **params: Any) -> Any:
        """GET a JSON document (None-valued parameters are left out)."""
        query = {k: v for k, v in params.items() if v not in (None, "")}
        return self._json(self._send("GET", path, params=query))

    def get_bytes(self, path: str) -> tuple[bytes, dict[str, str]]:
        """GET raw bytes (images) and the response headers."""
        response = self._send("GET", path)
        return response.content, dict(response.headers)

    def post(self, path: str, body: Any = None) -> Any:
        """POST JSON, return JSON (or None for an empty answer)."""
        return self._json(self._send("POST", path, json=body if body is not None else {}))

    def post_bytes(self, path: str, data: bytes, content_type: str) -> httpx.Response:
        """POST a raw body (bundles, evidence packages); the raw response."""
        return self._send("POST", path, content=data, headers={"Content-Type": content_type})

    def post_form(self, path: str, form: dict[str, str]) -> Any:
        """POST a form (the OAuth token endpoint)."""
        return self._json(self._send("POST", path, data=form))

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            with httpx.Client(timeout=TIMEOUT) as http:
                response = http.request(method, self.base_url + path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise HubUnreachableError(f"the hub at {self.base_url} does not answer: {exc}") from exc
        if response.status_code >= 400:
            raise _error(response)
        return response

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        return response.json() if response.content else None


def _error(response: httpx.Response) -> ConsoleError:
    try:
        problem = response.json()
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    detail = str(
        problem.get("detail") or problem.get("error_description") or response.reason_phrase
    )
    if response.status_code == 401 and problem.get("error") is None:
        return SessionExpiredError(detail)
    if response.status_code == 403:
        return PermissionDeniedError(detail, problem.get("decision_id"))
    return ApiError(response.status_code, detail, problem.get("code") or problem.get("error"))
