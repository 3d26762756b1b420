"""Static API tokens for scripts and systems (people and agencies normally use OAuth2).

Tokens live only as SHA-256 hashes in a TOML file (``HUB_API_TOKENS_FILE``); the token itself
is shown once, when `hub tokens create` makes it. A token is 256 random bits, so a plain hash
is enough (no slow KDF needed) and a leaked file does not leak usable tokens. The file is
re-read when it changes, so a token removed from it stops working within a second.

An admin token is honoured only when it expires within `MAX_ADMIN_HOURS` of its creation
and names the second factor it was made with (`totp:<user>`: `hub tokens create` checked
that console admin's password and TOTP code); any other admin entry is refused.
"""

import hashlib
import os
import secrets
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import msgspec

from hub.identity.schemas import Role, Subject
from hub.kit.errors import AuthenticationError

BEARER_PREFIX = "hubt_"  # recognisable in logs and by secret scanners
RELOAD_SECONDS = 1.0
MAX_ADMIN_HOURS = 12
ADMIN_ROLE = "admin"


class TokenEntry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One token's hash and the subject it stands for."""

    sha256: str
    subject: str
    kind: Literal["user", "client"] = "user"
    roles: list[Role]
    agency: str | None = None
    jurisdictions: list[str] = []
    clearance: int = 0
    purpose: str | None = None
    expires_at: datetime | None = None
    created_at: datetime | None = None
    # How the maker proved a second factor, e.g. "totp:ada" (required for admin tokens).
    second_factor: str | None = None


def admin_token_flaw(entry: TokenEntry) -> str | None:
    """Why an admin entry may not be honoured (None when it may, or is not an admin's)."""
    if ADMIN_ROLE not in entry.roles:
        return None
    if not entry.second_factor:
        return "an admin token must be made with a second factor (hub tokens create)"
    if entry.expires_at is None or entry.created_at is None:
        return "an admin token must carry its creation time and expiry"
    if entry.expires_at - entry.created_at > timedelta(hours=MAX_ADMIN_HOURS):
        return f"an admin token may live at most {MAX_ADMIN_HOURS} h"
    return None


class TokenFile(msgspec.Struct, frozen=True, kw_only=True):
    """The whole file: `[[token]]` tables."""

    token: list[TokenEntry] = []


def token_hash(token: str) -> str:
    """The hex SHA-256 the file stores for a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh token: a recognisable prefix and 256 random bits."""
    return BEARER_PREFIX + secrets.token_urlsafe(32)


class TokenStore:
    """Looks tokens up by hash in the tokens file, re-reading it when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, TokenEntry] = {}
        self._stamp: float | None = None
        self._checked = 0.0

    def subject_for(self, token: str, *, now: datetime) -> Subject:
        """The subject a bearer token stands for; 401 when unknown or expired."""
        entry = self._current().get(token_hash(token))
        if entry is None:
            raise AuthenticationError("unknown bearer token", code="token_invalid")
        if entry.expires_at is not None and entry.expires_at <= now:
            raise AuthenticationError("bearer token has expired", code="token_expired")
        flaw = admin_token_flaw(entry)
        if flaw is not None:
            raise AuthenticationError(flaw, code="static_admin_token_refused")
        return Subject(
            id=entry.subject,
            kind=entry.kind,
            roles=entry.roles,
            agency=entry.agency,
            jurisdictions=entry.jurisdictions,
            clearance=entry.clearance,
            purpose=entry.purpose,
        )

    def _current(self) -> dict[str, TokenEntry]:
        if time.monotonic() - self._checked >= RELOAD_SECONDS:
            self._checked = time.monotonic()
            stamp = self.path.stat().st_mtime if self.path.exists() else None
            if stamp != self._stamp:
                self._entries = {e.sha256: e for e in read_tokens(self.path).token}
                self._stamp = stamp
        return self._entries


def read_tokens(path: Path) -> TokenFile:
    """Parse the tokens file (an absent file holds no tokens)."""
    if not path.exists():
        return TokenFile()
    with path.open("rb") as fh:
        return msgspec.convert(tomllib.load(fh), TokenFile)


def append_token(path: Path, entry: TokenEntry) -> None:
    """Add one entry to the tokens file (created 0600 if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write(_toml_entry(entry))


def _toml_entry(entry: TokenEntry) -> str:
    def quote(value: str) -> str:
        return msgspec.json.encode(value).decode()  # a JSON string is a valid TOML basic string

    lines = [
        "",
        "[[token]]",
        f"sha256 = {quote(entry.sha256)}",
        f"subject = {quote(entry.subject)}",
        f"kind = {quote(entry.kind)}",
        f"roles = [{', '.join(quote(r) for r in entry.roles)}]",
        f"jurisdictions = [{', '.join(quote(j) for j in entry.jurisdictions)}]",
        f"clearance = {entry.clearance}",
    ]
    if entry.agency:
        lines.append(f"agency = {quote(entry.agency)}")
    if entry.purpose:
        lines.append(f"purpose = {quote(entry.purpose)}")
    for name, stamp in (("expires_at", entry.expires_at), ("created_at", entry.created_at)):
        if stamp:
            lines.append(f"{name} = {stamp.astimezone(UTC).isoformat()}")
    if entry.second_factor:
        lines.append(f"second_factor = {quote(entry.second_factor)}")
    return "\n".join(lines) + "\n"
