"""Every error leaves as RFC 9457 problem+json with a stable type, never a traceback."""

import asyncpg
import pytest
from litestar import Litestar, get, post
from litestar.params import FromPath
from litestar.testing import AsyncTestClient

from hub.kit.errors import ConflictError, UnavailableError
from hub.kit.problems import EXCEPTION_HANDLERS


@get("/boom")
async def boom() -> None:
    raise RuntimeError("secret internals: password=hunter2")


@get("/conflict")
async def conflict() -> None:
    raise ConflictError("already there", code="thing_exists")


@get("/busy")
async def busy() -> None:
    raise UnavailableError("backlog too deep", retry_after=7)


@get("/pooler/{which:str}")
async def pooler(which: FromPath[str]) -> None:
    # What asyncpg raises behind a transaction pooler with its statement cache on.
    if which == "duplicate":
        raise asyncpg.DuplicatePreparedStatementError('prepared statement "__asyncpg_1__" exists')
    raise asyncpg.InvalidSQLStatementNameError('prepared statement "__asyncpg_1__" missing')


@post("/only-post")
async def only_post() -> None:
    return None


def app() -> Litestar:
    return Litestar(
        [boom, conflict, busy, pooler, only_post], exception_handlers=EXCEPTION_HANDLERS
    )


async def test_unexpected_errors_hide_their_details() -> None:
    async with AsyncTestClient(app=app()) as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/internal"
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text


async def test_hub_errors_keep_status_code_and_type() -> None:
    async with AsyncTestClient(app=app()) as client:
        response = await client.get("/conflict")
    body = response.json()
    assert (response.status_code, body["type"], body["code"], body["status"]) == (
        409,
        "/problems/thing_exists",
        "thing_exists",
        409,
    )
    assert body["instance"] == "/conflict"


async def test_unavailable_carries_retry_after() -> None:
    async with AsyncTestClient(app=app()) as client:
        response = await client.get("/busy")
    assert (response.status_code, response.headers["retry-after"]) == (503, "7")


async def test_framework_errors_are_problems_too() -> None:
    async with AsyncTestClient(app=app()) as client:
        wrong_method = await client.get("/only-post")
        unknown = await client.get("/nope")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["type"] == "/problems/method_not_allowed"
    assert "post" in wrong_method.headers["allow"].lower()
    assert unknown.json()["type"] == "/problems/not_found"


@pytest.mark.parametrize("which", ["duplicate", "missing"])
async def test_a_statement_cache_behind_a_pooler_answers_503_not_500(which: str) -> None:
    async with AsyncTestClient(app=app()) as client:
        response = await client.get(f"/pooler/{which}")
    assert (response.status_code, response.json()["type"]) == (503, "/problems/unavailable")
    assert response.headers["retry-after"] == "5"
    assert "__asyncpg" not in response.text
