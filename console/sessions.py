"""Console sessions kept on the server: the browser holds only a signed, HttpOnly cookie that
names a session; the hub's access and refresh tokens stay in Redis.

A session lasts while it is used: the access token is refreshed before it expires (the
refresh grant needs no TOTP, so an admin enters a code once per login), and it ends on logout,
when the hub refuses the refresh token (revoked, expired, user disabled) or after
`console_idle_seconds` without a request. Tokens never reach a URL, a log line or the browser.
"""

import base64
import contextlib
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import msgspec
import redis

from console.api import ApiError, ConsoleError, HubClient
from hub.settings import load_settings

COOKIE = "hub_console_session"
REFRESH_MARGIN = 60.0  # seconds before expiry; a page load never carries an expiring token
LOCK_SECONDS = 15


class ConsoleSession(msgspec.Struct, kw_only=True):
    """One signed-in user as the console server keeps them (never sent to the browser)."""

    handle: str  # a digest of the cookie's session id (the id itself is never stored)
    username: str
    roles: tuple[str, ...]
    access_token: str
    refresh_token: str | None
    expires_at: float
    last_seen: float

    def idle_left(self, *, idle_seconds: int, now: float) -> int:
        """Seconds until the session ends for want of use."""
        return max(0, int(self.last_seen + idle_seconds - now))


class SessionStore:
    """Sign in, resume, refresh and end console sessions (Redis, under the hub's prefix)."""

    def __init__(
        self,
        *,
        client: redis.Redis,
        prefix: str,
        secret: bytes,
        idle_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = client
        self.prefix = prefix + "console:"
        self.secret = secret
        self.idle_seconds = idle_seconds
        self.clock = clock

    def sign_in(self, hub_url: str, username: str, password: str, totp: str | None) -> str:
        """Password (+ TOTP) grant at the hub; stores the session, returns its cookie value."""
        form = {"grant_type": "password", "username": username, "password": password}
        if totp and totp.strip():
            form["totp"] = totp.strip()
        answer = HubClient(hub_url).post_form("/oauth/token", form)
        now = self.clock()
        sid = secrets.token_urlsafe(32)
        session = ConsoleSession(
            handle=_digest(sid),
            username=username,
            roles=_roles(str(answer["access_token"])),
            access_token=str(answer["access_token"]),
            refresh_token=answer.get("refresh_token"),
            expires_at=now + int(answer.get("expires_in", 0)),
            last_seen=now,
        )
        self._save(session)
        return self.cookie_for(sid)

    def resume(self, hub_url: str, cookie: str | None) -> ConsoleSession | None:
        """The live session this cookie names (touched, refreshed when due), or None."""
        sid = self.sid_of(cookie)
        session = None if sid is None else self._load(_digest(sid))
        if session is None:
            return None
        now = self.clock()
        if now - session.last_seen > self.idle_seconds:
            self.redis.delete(self._key(session.handle))
            return None
        if session.expires_at - now <= REFRESH_MARGIN:
            return self._refreshed(hub_url, session)
        session.last_seen = now
        self._save(session)
        return session

    def end(self, sid: str, *, hub_url: str | None = None) -> None:
        """Forget the session; with `hub_url`, revoke its refresh token at the hub first."""
        session = self._load(_digest(sid))
        self.redis.delete(self._key(_digest(sid)))
        if hub_url and session is not None and session.refresh_token:
            # The session is gone here either way; an unrevoked refresh token expires alone.
            with contextlib.suppress(ConsoleError):
                HubClient(hub_url, session.access_token).post_form(
                    "/oauth/revoke",
                    {"token": session.refresh_token, "token_type_hint": "refresh_token"},
                )

    def cookie_for(self, sid: str) -> str:
        """`sid.signature` (HMAC-SHA256 under the console's key)."""
        return f"{sid}.{self._sign(sid)}"

    def sid_of(self, cookie: str | None) -> str | None:
        """The session id a cookie carries when its signature holds, else None."""
        sid, _, signature = (cookie or "").partition(".")
        if not sid or not hmac.compare_digest(signature, self._sign(sid)):
            return None
        return sid

    def _refreshed(self, hub_url: str, session: ConsoleSession) -> ConsoleSession | None:
        """Swap the refresh token for new tokens; one refresher per session (rotation makes a
        second use look like theft, which revokes the whole login)."""
        lock = self._key(session.handle, "refreshing")
        if not self.redis.set(lock, b"1", nx=True, ex=LOCK_SECONDS):
            return self._after_other_refresh(session)
        try:
            return self._exchange(hub_url, session)
        finally:
            self.redis.delete(lock)

    def _exchange(self, hub_url: str, session: ConsoleSession) -> ConsoleSession | None:
        if not session.refresh_token:
            self.redis.delete(self._key(session.handle))
            return None
        form = {"grant_type": "refresh_token", "refresh_token": session.refresh_token}
        try:
            answer = HubClient(hub_url).post_form("/oauth/token", form)
        except ApiError:  # revoked, expired or disabled: the login is over
            self.redis.delete(self._key(session.handle))
            return None
        now = self.clock()
        session.access_token = str(answer["access_token"])
        session.refresh_token = answer.get("refresh_token")
        session.roles = _roles(session.access_token)
        session.expires_at = now + int(answer.get("expires_in", 0))
        session.last_seen = now
        self._save(session)
        return session

    def _after_other_refresh(self, session: ConsoleSession) -> ConsoleSession | None:
        """Wait (briefly) for the concurrent refresher to store its tokens."""
        deadline = self.clock() + LOCK_SECONDS
        while self.clock() < deadline:
            time.sleep(0.1)
            current = self._load(session.handle)
            if current is None or current.access_token != session.access_token:
                return current
        return None

    def _save(self, session: ConsoleSession) -> None:
        self.redis.set(
            self._key(session.handle), msgspec.json.encode(session), ex=self.idle_seconds + 60
        )

    def _load(self, handle: str) -> ConsoleSession | None:
        raw = self.redis.get(self._key(handle))
        if not isinstance(raw, bytes):
            return None
        try:
            return msgspec.json.decode(raw, type=ConsoleSession)
        except msgspec.DecodeError:
            return None

    def _key(self, handle: str, *more: str) -> str:
        return self.prefix + ":".join(("session", handle, *more))

    def _sign(self, sid: str) -> str:
        mac = hmac.new(self.secret, sid.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def open_store() -> SessionStore:
    """The session store for the current settings (one per process and settings)."""
    settings = load_settings()
    return _store(
        settings.redis_url,
        settings.redis_prefix,
        settings.secrets_dir,
        settings.console_idle_seconds,
    )


@lru_cache(maxsize=4)
def _store(redis_url: str, prefix: str, secrets_dir: str, idle_seconds: int) -> SessionStore:
    return SessionStore(
        client=redis.Redis.from_url(redis_url),
        prefix=prefix,
        secret=session_key(secrets_dir),
        idle_seconds=idle_seconds,
    )


def session_key(folder: str) -> bytes:
    """The console's cookie-signing key, made (0600) in the secrets folder on first use."""
    path = Path(folder) / "console-session.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with path.open("xb") as fh:
                path.chmod(0o600)
                fh.write(secrets.token_bytes(32))
        except FileExistsError:
            pass  # another console process made it first
    return path.read_bytes()


def _digest(sid: str) -> str:
    """What Redis knows a session by: whoever reads Redis cannot make a cookie from it."""
    return hashlib.sha256(sid.encode()).hexdigest()


def _roles(token: str) -> tuple[str, ...]:
    """The roles claim of the hub's JWT, unverified (to choose pages; the hub decides)."""
    try:
        payload = token.split(".")[1]
        claims = msgspec.json.decode(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, msgspec.DecodeError):
        return ()
    roles = claims.get("roles", []) if isinstance(claims, dict) else []
    return tuple(str(r) for r in roles)
