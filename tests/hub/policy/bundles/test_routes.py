"""`/v1/admin/policy` over HTTP on the smallest app that shows it: the bundle router, the
hub's problem handlers, real services, and a stand-in for the app-wide policy guard (it
leaves the subject on the connection exactly where `policy_guard` does)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.handlers.base import BaseRouteHandler
from litestar.testing import AsyncTestClient

from hub.identity.schemas import Subject
from hub.kit.problems import EXCEPTION_HANDLERS
from hub.policy.bundles.archive import write_archive
from hub.policy.bundles.routes import build_router
from hub.policy.guard import DECISION_KEY, SUBJECT_KEY
from hub.runtime import build_services, start_services, stop_services
from hub.settings import Settings
from tests.hub.policy.bundles.builders import bundle_files, make_key, signed_archive
from tests.support import BASE_URL

pytestmark = [pytest.mark.db, pytest.mark.redis]

KEY = make_key("admin-1")
GZIP = {"Content-Type": "application/gzip"}
ADMIN = Subject(id="ada", kind="user", roles=["admin"])
Client = AsyncTestClient[Litestar]


async def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    connection.state[SUBJECT_KEY] = ADMIN
    connection.state[DECISION_KEY] = "decision-42"


def small_app(settings: Settings, *, guarded: bool = True) -> Litestar:
    """The router on real services, started in the app's own loop (as the hub's app does)."""
    services = build_services(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await start_services(services)
        try:
            yield
        finally:
            await stop_services(services)

    return Litestar(
        route_handlers=[build_router(settings)],
        dependencies={"services": Provide(lambda: services, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        guards=[admin_guard] if guarded else [],
        lifespan=[lifespan],
    )


@pytest.fixture
def admin_settings(settings: Settings, tmp_path: Path) -> Settings:
    keys = tmp_path / "policy-keys.toml"
    keys.write_text(f"[keys.{KEY.kid}]\npublic_key = '''\n{KEY.public_pem}'''\n")
    return msgspec.structs.replace(
        settings, policy_verify_keys_file=str(keys), max_bundle_bytes=16 * 1024
    )


@pytest.fixture
async def client(admin_settings: Settings) -> AsyncIterator[Client]:
    async with AsyncTestClient(app=small_app(admin_settings), base_url=BASE_URL) as test_client:
        yield test_client


async def post_bundle(client: Client, revision: str, **kwargs: bool) -> Any:
    body = signed_archive(bundle_files(revision, **kwargs), KEY)
    return await client.post("/v1/admin/policy/bundles", content=body, headers=GZIP)


async def test_upload_stores_once_and_says_so(client: Client) -> None:
    archive = signed_archive(bundle_files("r1"), KEY)
    first = await client.post("/v1/admin/policy/bundles", content=archive, headers=GZIP)
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["created"], body["signed_by"]) == (True, "admin-1")
    assert body["bundle"]["status"] == "uploaded"
    assert body["bundle"]["uploaded_by"] == "user:ada"
    again = await client.post("/v1/admin/policy/bundles", content=archive, headers=GZIP)
    assert (again.status_code, again.json()["created"]) == (200, False)
    resigned = await post_bundle(client, "r1")  # same files, a new signature: other bytes
    assert (resigned.status_code, resigned.json()["code"]) == (409, "bundle_revision_exists")


async def test_refusals_are_problems_with_stable_types(client: Client) -> None:
    unsigned = await client.post(
        "/v1/admin/policy/bundles", content=write_archive(bundle_files("r1")), headers=GZIP
    )
    assert unsigned.status_code == 400
    assert unsigned.headers["content-type"].startswith("application/problem+json")
    assert unsigned.json()["type"] == "/problems/bundle_unsigned"
    failing = await post_bundle(client, "r2", failing=True)
    assert failing.status_code == 422
    problem = failing.json()
    assert problem["code"] == "bundle_tests_failed"
    assert problem["failed_tests"] == ["data.hub.authz_test.test_everyone_is_allowed"]
    garbage = await client.post("/v1/admin/policy/bundles", content=b"\x1f\x8bnope", headers=GZIP)
    assert (garbage.status_code, garbage.json()["code"]) == (400, "bundle_malformed")


async def test_wrong_type_and_oversized_bodies_are_refused(client: Client) -> None:
    as_json = await client.post(
        "/v1/admin/policy/bundles", content=b"{}", headers={"Content-Type": "application/json"}
    )
    assert as_json.status_code == 415
    huge = await client.post("/v1/admin/policy/bundles", content=bytes(20 * 1024), headers=GZIP)
    assert huge.status_code == 413


async def test_activate_list_rollback_and_status(client: Client) -> None:
    for revision in ("r1", "r2"):
        assert (await post_bundle(client, revision)).status_code == 201
    for revision in ("r1", "r2"):
        done = await client.post(f"/v1/admin/policy/bundles/{revision}/activate")
        assert (done.status_code, done.json()["status"]) == (200, "active")
    listed = (await client.get("/v1/admin/policy/bundles")).json()
    assert {b["revision"]: b["status"] for b in listed} == {"r1": "retired", "r2": "active"}
    back = await client.post("/v1/admin/policy/rollback", json={"revision": "r1"})
    assert (back.status_code, back.json()["revision"]) == (200, "r1")
    status = (await client.get("/v1/admin/policy/status")).json()
    assert (status["active_revision"], status["activated_by"]) == ("r1", "user:ada")


async def test_unknown_revisions_and_bad_bodies(client: Client) -> None:
    missing = await client.post("/v1/admin/policy/bundles/nope/activate")
    assert (missing.status_code, missing.json()["code"]) == (404, "bundle_not_found")
    bad = await client.post("/v1/admin/policy/rollback", json={"revision": "r1", "extra": 1})
    assert bad.status_code == 400
    unsafe = await client.post("/v1/admin/policy/rollback", json={"revision": "../etc"})
    assert unsafe.status_code == 400


async def test_handlers_refuse_a_request_the_guard_did_not_pass(admin_settings: Settings) -> None:
    app = small_app(admin_settings, guarded=False)
    async with AsyncTestClient(app=app, base_url=BASE_URL) as unguarded:
        response = await unguarded.get("/v1/admin/policy/status")
    assert response.status_code == 401
