"""Console sessions against a real hub: refreshed before expiry without a second TOTP, ended
by idle time, logout or revocation at the hub, refused with a forged cookie."""

import threading
from pathlib import Path

import httpx
import pyotp
import pytest
import redis

from console.sessions import ConsoleSession, SessionStore, session_key
from hub.settings import Settings
from tests.console.conftest import PASSWORD, Hub

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.slow]


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(settings: Settings, clock: Clock) -> SessionStore:
    return SessionStore(
        client=redis.Redis.from_url(settings.redis_url),
        prefix=settings.redis_prefix,
        secret=session_key(settings.secrets_dir),
        idle_seconds=600,
        clock=clock,
    )


def live(store: SessionStore, hub: Hub, cookie: str) -> ConsoleSession:
    session = store.resume(hub.url, cookie)
    assert session is not None
    return session


def call(hub: Hub, method: str, path: str, token: str, form: dict[str, str] | None = None) -> int:
    """The status of one request made with a bearer token."""
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.request(method, hub.url + path, data=form, headers=headers).status_code


def refresh_works(hub: Hub, token: str | None) -> bool:
    answer = httpx.post(
        f"{hub.url}/oauth/token", data={"grant_type": "refresh_token", "refresh_token": token}
    )
    return answer.status_code == 200


async def test_refreshed_before_expiry_without_a_second_totp(
    seeded: Hub, store: SessionStore, clock: Clock
) -> None:
    code = pyotp.TOTP(seeded.totp["ada"]).now()
    cookie = store.sign_in(seeded.url, "ada", PASSWORD, code)
    first = live(store, seeded, cookie)
    assert first.roles == ("admin",)
    clock.now = first.expires_at - 30  # inside the refresh margin
    second = live(store, seeded, cookie)
    assert second.access_token != first.access_token
    assert second.expires_at > first.expires_at
    assert call(seeded, "GET", "/v1/admin/agencies", second.access_token) == 200
    assert not refresh_works(seeded, first.refresh_token)  # rotated: the old one is spent


async def test_concurrent_pages_refresh_once(
    seeded: Hub, store: SessionStore, clock: Clock
) -> None:
    cookie = store.sign_in(seeded.url, "olga", PASSWORD, None)
    clock.now = live(store, seeded, cookie).expires_at - 10
    seen: list[ConsoleSession | None] = []
    threads = [
        threading.Thread(target=lambda: seen.append(store.resume(seeded.url, cookie)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tokens = {s.access_token for s in seen if s is not None}
    assert len(seen) == 4
    assert len(tokens) == 1  # one refresh; a second use would have revoked the login
    assert refresh_works(seeded, live(store, seeded, cookie).refresh_token)


async def test_idle_session_ends(seeded: Hub, store: SessionStore, clock: Clock) -> None:
    cookie = store.sign_in(seeded.url, "olga", PASSWORD, None)
    clock.now += 599
    live(store, seeded, cookie)  # used: the idle clock starts again
    clock.now += 599
    live(store, seeded, cookie)
    clock.now += 601
    assert store.resume(seeded.url, cookie) is None
    clock.now -= 601
    assert store.resume(seeded.url, cookie) is None  # gone, not just hidden


async def test_logout_revokes_the_refresh_token(seeded: Hub, store: SessionStore) -> None:
    cookie = store.sign_in(seeded.url, "olga", PASSWORD, None)
    session = live(store, seeded, cookie)
    sid = store.sid_of(cookie)
    assert sid is not None
    store.end(sid, hub_url=seeded.url)
    assert store.resume(seeded.url, cookie) is None
    assert not refresh_works(seeded, session.refresh_token)


async def test_revoked_at_the_hub_ends_at_the_next_refresh(
    seeded: Hub, store: SessionStore, clock: Clock
) -> None:
    cookie = store.sign_in(seeded.url, "olga", PASSWORD, None)
    session = live(store, seeded, cookie)
    form = {"token": session.refresh_token or ""}
    assert call(seeded, "POST", "/oauth/revoke", session.access_token, form) == 200
    clock.now = session.expires_at - 5
    assert store.resume(seeded.url, cookie) is None


async def test_forged_or_foreign_cookies_name_no_session(
    seeded: Hub, store: SessionStore, settings: Settings, tmp_path: Path
) -> None:
    cookie = store.sign_in(seeded.url, "olga", PASSWORD, None)
    sid, _, signature = cookie.partition(".")
    assert store.resume(seeded.url, f"{sid}.{signature[:-2]}xx") is None
    assert store.resume(seeded.url, sid) is None
    assert store.resume(seeded.url, None) is None
    other = SessionStore(
        client=store.redis,
        prefix=settings.redis_prefix,
        secret=session_key(str(tmp_path)),  # another console's key
        idle_seconds=600,
    )
    assert other.resume(seeded.url, cookie) is None
    stored = b"".join(store.redis.get(k) or b"" for k in store.redis.keys(store.prefix + "*"))
    assert sid.encode() not in stored  # keys hold a digest of the id, not the id
    assert live(store, seeded, cookie).username == "olga"
