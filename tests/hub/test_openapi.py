"""The OpenAPI contract: every operation described, secured and answering problem+json; raw
bodies, signatures and the non-REST endpoints documented; a client generated from it; the
docs page served with the hub's own assets."""

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

pytestmark = [pytest.mark.db, pytest.mark.redis]

PROBLEM = "application/problem+json"
METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture
async def document(client: AsyncTestClient[Any]) -> dict[str, Any]:
    answer = await client.get("/schema/openapi.json")
    assert answer.status_code == 200, answer.text  # before: 500 (a Struct default in a schema)
    doc: dict[str, Any] = answer.json()
    return doc


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, item[method])
        for path, item in doc["paths"].items()
        for method in METHODS
        if method in item
    ]


def problem_statuses(doc: dict[str, Any], op: dict[str, Any]) -> set[str]:
    """Statuses whose response (inline or shared) is a problem+json document."""
    found = set()
    for status, response in op["responses"].items():
        if "$ref" in response:
            response = doc["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
        if PROBLEM in response.get("content", {}):
            found.add(status)
    return found


async def test_every_operation_has_summary_description_security_and_problems(
    document: dict[str, Any],
) -> None:
    # Before: no descriptions, no security schemes, no 401/403/429 and no problem+json.
    assert {"bearerAuth", "oauth2", "edgeSignature", "clientBasic"} <= set(
        document["components"]["securitySchemes"]
    )
    ops = operations(document)
    assert len(ops) > 50
    ids = [op["operationId"] for _, _, op in ops]
    assert len(ids) == len(set(ids)), "operationIds must be unique for a generated client"
    for method, path, op in ops:
        where = f"{method.upper()} {path}"
        assert " " in op["summary"], where
        assert op["description"], where
        assert "security" in op, where
        if op.get("x-websocket"):
            continue
        statuses = problem_statuses(document, op)
        assert {"429", "500", "503"} <= statuses, where
        if op["security"] and {} not in op["security"]:
            assert "401" in statuses, where
        if "{" in path:
            assert "404" in statuses, where
        if "requestBody" in op:
            assert {"413", "415", "422"} <= statuses, where
    guarded = [op for m, p, op in ops if p.startswith("/v1/admin/")]
    assert all(op["security"] == [{"bearerAuth": []}, {"oauth2": []}] for op in guarded)
    assert all("403" in problem_statuses(document, op) for op in guarded)


async def test_problem_responses_list_the_stable_types(document: dict[str, Any]) -> None:
    responses = document["components"]["responses"]
    expected = {
        "Unauthenticated": ("token_revoked", "credentials_missing", "signature_replayed"),
        "Forbidden": ("policy_denied",),
        "TooManyRequests": ("rate_limited", "signin_throttled"),
        "NotFound": ("lockout_not_found",),
        "Unavailable": ("unavailable",),
    }
    for name, codes in expected.items():
        for code in codes:
            assert f"`/problems/{code}`" in responses[name]["description"], (name, code)
    assert "Retry-After" in responses["TooManyRequests"]["headers"]
    problem = document["components"]["schemas"]["Problem"]
    assert problem["properties"]["type"]["pattern"] == "^/problems/[a-z0-9_]+$"


async def test_edge_events_document_their_body_and_signature_headers(
    document: dict[str, Any],
) -> None:
    # Before: POST /v1/edge/events had no request body and no word about signatures.
    op = document["paths"]["/v1/edge/events"]["post"]
    body = op["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/EventBatch"}
    batch = document["components"]["schemas"]["EventBatch"]
    assert batch["additionalProperties"] is False
    assert "events" in batch["properties"]
    headers = {p["name"]: p for p in op["parameters"] if p["in"] == "header"}
    assert all(headers[h]["required"] for h in ("Signature-Input", "Signature", "Content-Digest"))
    assert op["security"] == [{"edgeSignature": []}]
    media = document["paths"]["/v1/edge/media/{sha256}"]["post"]["requestBody"]["content"]
    assert set(media) == {"image/jpeg", "image/png"}


async def test_oauth_endpoints_document_their_forms_and_client_authentication(
    document: dict[str, Any],
) -> None:
    form = "application/x-www-form-urlencoded"
    token = document["paths"]["/oauth/token"]["post"]
    grants = token["requestBody"]["content"][form]["schema"]["properties"]["grant_type"]["enum"]
    assert set(grants) == {"client_credentials", "password", "refresh_token"}
    revoke = document["paths"]["/oauth/revoke"]["post"]
    assert revoke["requestBody"]["content"][form]["schema"]["required"] == ["token"]
    assert revoke["security"] == [{"clientBasic": []}, {"bearerAuth": []}]
    assert "401" in problem_statuses(document, revoke)


async def test_websocket_soap_and_metrics_are_described(document: dict[str, Any]) -> None:
    # Before: the live feed, SOAP and /metrics were missing.
    live = document["paths"]["/v1/feeds/live"]["get"]
    assert live["x-websocket"] is True
    assert "101" in live["responses"]
    wsdl = document["paths"]["/soap/feed"]["get"]
    assert wsdl["externalDocs"]["url"] == "/soap/feed?wsdl"
    assert "GetEvents" in wsdl["description"]
    assert "[WSDL](/soap/feed?wsdl)" in document["info"]["description"]
    metrics = document["paths"]["/metrics"]["get"]
    assert "text/plain" in metrics["responses"]["200"]["content"]
    assert metrics["security"]


async def test_request_schemas_refuse_what_the_server_refuses(
    document: dict[str, Any], client: AsyncTestClient[Any]
) -> None:
    # Before: request bodies allowed any extra member, which the server answers with 400.
    schemas = document["components"]["schemas"]
    for name in ("AgencyCreate", "PauseRequest", "ExportRequest", "EventBatch"):
        assert schemas[name]["additionalProperties"] is False, name
    pause = document["paths"]["/v1/admin/agencies/{agency}/pause"]["post"]
    ref = pause["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert schemas[ref.rsplit("/", 1)[1]]["additionalProperties"] is False


async def test_the_docs_page_loads_only_the_hubs_own_assets(client: AsyncTestClient[Any]) -> None:
    # Before: the page, its scripts and fonts came from a CDN: blank on an offline network.
    page = await client.get("/schema")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
    assert urls, page.text[:500]
    assert all(url.startswith("/schema/assets/") for url in urls), urls
    head = page.text.split("spec:")[0]  # the page before the embedded document
    assert "http://" not in head
    assert "https://" not in head
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url


@pytest.mark.slow
async def test_a_client_generated_from_the_document_imports(
    document: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import msgspec

    codegen = shutil.which("datamodel-codegen") or str(
        Path(sys.executable).with_name("datamodel-codegen")
    )
    source = tmp_path / "openapi.json"
    source.write_bytes(msgspec.json.encode(document))
    target = tmp_path / "hub_client.py"
    done = subprocess.run(  # noqa: ASYNC221, S603 (our own tool on our own document)
        [codegen, "--input", str(source), "--input-file-type", "openapi",
         "--output", str(target), "--output-model-type", "pydantic_v2.BaseModel",
         "--openapi-scopes", "schemas", "paths", "parameters"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    spec = importlib.util.spec_from_file_location("hub_client", target)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "hub_client", module)  # pydantic generics look it up
    spec.loader.exec_module(module)
    # The generated models carry the contract's rules: a batch holds at least one event.
    with pytest.raises(ValueError, match="at least 1 item"):
        module.EventBatch.model_validate({"events": []})
    assert module.Problem.model_validate(
        {"type": "/problems/x", "title": "t", "status": 404, "code": "x"}
    )


async def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    from openapi_spec_validator import OpenAPIV31SpecValidator

    errors = [e.message[:200] for e in OpenAPIV31SpecValidator(document).iter_errors()]
    assert errors == []
