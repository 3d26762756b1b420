"""The console as an ASGI app: Streamlit's pages plus the sign-in routes that set the session
cookie (a Streamlit script cannot set an HttpOnly cookie; these routes can).

`GET /signin` serves a plain form (no external assets), `POST /signin` exchanges the password
(+ TOTP) at the hub and redirects to the page asked for. The form carries a double-submit
token, so another site cannot sign a browser in as someone else.
"""

import html
import secrets
from pathlib import Path
from urllib.parse import parse_qsl

import streamlit as st
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from console.api import ConsoleError, HubUnreachableError
from console.sessions import COOKIE, open_store
from hub.settings import load_settings

HERE = Path(__file__).parent
CSRF_COOKIE = "hub_console_signin"
MAX_FORM = 4096


def hub_api_url() -> str:
    """The hub API the console calls as its users."""
    return load_settings().console_api_url


def safe_next(target: str | None) -> str:
    """A same-site path to return to (anything else, e.g. `//evil` or a URL, becomes `/`)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def signin_form(request: Request) -> Response:
    """The sign-in page, with a fresh anti-forgery token."""
    return _form(safe_next(request.query_params.get("next")), message=None, status=200)


async def signin(request: Request) -> Response:
    """Check the form's token, sign in at the hub, set the session cookie, go back."""
    body = await request.body()
    form = dict(parse_qsl(body[:MAX_FORM].decode(errors="replace")))
    target = safe_next(form.get("next"))
    token = request.cookies.get(CSRF_COOKIE, "")
    if not token or not secrets.compare_digest(token, form.get("csrf", "")):
        return _form(target, message="The form expired; please try again.", status=400)
    try:
        cookie = await run_in_threadpool(
            open_store().sign_in,
            hub_api_url(),
            form.get("username", ""),
            form.get("password", ""),
            form.get("totp"),
        )
    except HubUnreachableError:
        return _form(target, message="The hub does not answer; try again shortly.", status=503)
    except ConsoleError as exc:
        return _form(target, message=f"Sign-in refused: {getattr(exc, 'detail', exc)}", status=401)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        cookie,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    response.delete_cookie(CSRF_COOKIE, path="/signin")
    return response


def _form(target: str, *, message: str | None, status: int) -> HTMLResponse:
    """The page with the form (and why the last attempt failed)."""
    csrf = secrets.token_urlsafe(24)
    note = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
    page = (HERE / "signin.html").read_text(encoding="utf-8")
    body = (
        page.replace("{{note}}", note)
        .replace("{{next}}", html.escape(target, quote=True))
        .replace("{{csrf}}", csrf)
    )
    response = HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})
    response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict", path="/signin")
    return response


app = st.App(
    HERE / "app.py",
    routes=[
        Route("/signin", signin_form, methods=["GET"]),
        Route("/signin", signin, methods=["POST"]),
    ],
)
