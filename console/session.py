"""The console session: a hub access token and what the console shows about its holder.

The token is the session: it is kept only in this browser session's state and the session
ends when the token expires. Roles are read from the token's claims to choose the pages to
offer; the hub checks the signature and decides every request by policy.
"""

import base64
import json
import time
from dataclasses import dataclass
from typing import Any

from console.api import HubClient

ROLE_PAGES: dict[str, tuple[str, ...]] = {
    "compliance_officer": ("overview", "audit", "decisions", "incidents"),
    "admin": ("overview", "decisions", "deliveries", "policy"),
    "operator": ("overview",),
}
PAGE_ORDER = ("overview", "audit", "decisions", "incidents", "deliveries", "policy")


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in user."""

    username: str
    roles: tuple[str, ...]
    token: str
    expires_at: float

    def expired(self, now: float | None = None) -> bool:
        """Whether the token has run out (a few seconds early, to avoid a failing call)."""
        return (now if now is not None else time.time()) >= self.expires_at - 5

    def seconds_left(self) -> int:
        """Seconds until the session ends."""
        return max(0, int(self.expires_at - time.time()))


def login(hub_url: str, username: str, password: str, totp: str | None) -> Session:
    """Password (+ TOTP) grant at `/oauth/token`; raises a `ConsoleError` when refused."""
    form = {"grant_type": "password", "username": username, "password": password}
    if totp:
        form["totp"] = totp.strip()
    answer = HubClient(hub_url).post_form("/oauth/token", form)
    token = str(answer["access_token"])
    claims = token_claims(token)
    return Session(
        username=str(claims.get("sub", username)),
        roles=tuple(str(r) for r in claims.get("roles", [])),
        token=token,
        expires_at=time.time() + int(answer.get("expires_in", 0)),
    )


def token_claims(token: str) -> dict[str, Any]:
    """The JWT's claims, unverified (display and navigation only)."""
    try:
        payload = token.split(".")[1]
        decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return decoded if isinstance(decoded, dict) else {}


def pages_for(roles: tuple[str, ...]) -> list[str]:
    """The pages a user with these roles is offered, in menu order."""
    allowed = {page for role in roles for page in ROLE_PAGES.get(role, ())}
    return [page for page in PAGE_ORDER if page in allowed]
