"""Shared page plumbing: the current session, an API client for it, and one way to show
errors (hub unreachable, session expired, permission denied) instead of a traceback."""

from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import streamlit as st

from console.api import (
    ApiError,
    ConsoleError,
    HubClient,
    HubUnreachableError,
    PermissionDeniedError,
    SessionExpiredError,
)
from console.sessions import COOKIE, ConsoleSession, open_store
from hub.settings import load_settings

T = TypeVar("T")
COOKIE_KEY = "hub_cookie"
URL_KEY = "hub_url"
NOTICE_KEY = "hub_notice"


def hub_url() -> str:
    """The hub's API base URL (session override, else HUB_CONSOLE_API_URL)."""
    url = st.session_state.get(URL_KEY)
    if not url:
        url = load_settings().console_api_url
        st.session_state[URL_KEY] = url
    return str(url)


def current_session() -> ConsoleSession | None:
    """The signed-in session this browser's cookie names (refreshed when due), or None."""
    cookie = _cookie()
    if not cookie:
        return None
    try:
        session = open_store().resume(hub_url(), cookie)
    except ConsoleError as exc:
        _render(exc, what="your session")
        st.stop()
    if session is None:
        st.session_state.pop(COOKIE_KEY, None)
        st.session_state.setdefault(NOTICE_KEY, "Your session has ended. Sign in again.")
        return None
    st.session_state[COOKIE_KEY] = cookie
    return session


def _cookie() -> str | None:
    """The session cookie of this browser (kept in the script's state once seen)."""
    sent = st.context.cookies.get(COOKIE)
    kept = st.session_state.get(COOKIE_KEY)
    for value in (sent, kept):
        if isinstance(value, str) and value:
            return value
    return None


def end_session(notice: str | None = None) -> None:
    """End the session here and at the hub (its refresh token is revoked)."""
    store = open_store()
    sid = store.sid_of(_cookie())
    if sid is not None:
        store.end(sid, hub_url=hub_url())
    st.session_state.pop(COOKIE_KEY, None)
    if notice:
        st.session_state[NOTICE_KEY] = notice


def client() -> HubClient:
    """An API client acting as the signed-in user; stops the page when there is none."""
    session = current_session()
    if session is None:
        st.warning(st.session_state.get(NOTICE_KEY) or "You are not signed in.")
        st.stop()
    return HubClient(hub_url(), session.access_token)


def call(action: Callable[[], T], *, what: str) -> T:
    """Run an API call; on failure show why and stop the page."""
    try:
        return action()
    except ConsoleError as exc:
        show_error(exc, what=what)


def attempt(action: Callable[[], T], *, what: str) -> T | None:
    """Run an API call; on failure show why and carry on (None)."""
    try:
        return action()
    except SessionExpiredError as exc:
        show_error(exc, what=what)
    except ConsoleError as exc:
        _render(exc, what=what)
        return None


def show_error(exc: ConsoleError, *, what: str) -> NoReturn:
    """Show a console error plainly and stop this run (401 ends the session)."""
    _render(exc, what=what)
    st.stop()


def _render(exc: ConsoleError, *, what: str) -> None:
    if isinstance(exc, HubUnreachableError):
        st.error(f"Hub unreachable while loading {what}. {exc}", icon=":material/power_off:")
    elif isinstance(exc, SessionExpiredError):
        end_session("Your session has ended (the hub no longer accepts it).")
        st.error(f"Session ended while loading {what}: sign in again.", icon=":material/lock:")
    elif isinstance(exc, PermissionDeniedError):
        st.error(
            f"Permission denied for {what}: {exc}"
            + (f" (decision {exc.decision_id})" if exc.decision_id else ""),
            icon=":material/block:",
        )
    elif isinstance(exc, ApiError):
        st.error(f"The hub refused {what}: {exc.detail} ({exc.status})")
    else:
        st.error(str(exc))


def empty(message: str) -> None:
    """A clear empty state."""
    st.info(message, icon=":material/info:")


def rows(items: list[dict[str, Any]], columns: list[str]) -> list[dict[str, Any]]:
    """Items cut down to the columns a table shows (missing values as None)."""
    return [{c: item.get(c) for c in columns} for item in items]


def action_button(
    label: str, *, key: str, action: Callable[[], Any], what: str, disabled: bool = False
) -> None:
    """A button that runs one API call and reloads the page when it succeeded."""
    if st.button(label, key=key, disabled=disabled) and attempt(action, what=what) is not None:
        st.rerun()
