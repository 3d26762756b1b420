"""Finishing Litestar's generated document into the hub's contract.

Litestar knows the handlers' parameters and return types; it does not know that every guarded
route can answer 401/403/429 as problem+json, which routes read their body raw, how each is
authenticated, or that request Structs refuse unknown members. `finish` adds exactly that to
the generated dictionary, once per process.
"""

import copy
from collections import Counter
from typing import Any

import msgspec

from hub.openapi.extras import contract_schemas, protocol_paths, request_bodies, signature_headers
from hub.openapi.responses import PROBLEM_SCHEMA, problem_responses, response_ref

METHODS = ("get", "put", "post", "delete", "patch")
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"oauth2": []}]
SECURITY_SCHEMES: dict[str, Any] = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token from `/oauth/token` (ES256 JWT, keys at "
        "`/.well-known/jwks.json`). Static tokens from `hub tokens create` work the same way.",
    },
    "oauth2": {
        "type": "oauth2",
        "description": "Agencies: client_credentials. Console users: password (+ `totp`).",
        "flows": {
            "clientCredentials": {"tokenUrl": "/oauth/token", "scopes": {}},
            "password": {"tokenUrl": "/oauth/token", "scopes": {}},
        },
    },
    "clientBasic": {
        "type": "http",
        "scheme": "basic",
        "description": "OAuth client authentication (RFC 6749 §2.3.1): client_id:client_secret.",
    },
    "edgeSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "Signature",
        "description": "HTTP Message Signatures (RFC 9421, Ed25519) by a registered edge node, "
        "with `Signature-Input` and `Content-Digest`; see the operation's headers.",
    },
}
# Public operations that still authenticate a client (RFC 6749 §2.3, RFC 7009 §2.1).
_PUBLIC_SECURITY: dict[tuple[str, str], list[dict[str, list[str]]]] = {
    ("post", "/oauth/token"): [{}, {"clientBasic": []}],
    ("post", "/oauth/revoke"): [{"clientBasic": []}, {"bearerAuth": []}],
}


class RouteFacts(msgspec.Struct, frozen=True):
    """What the app's routes say about each operation: public or guarded."""

    public: frozenset[tuple[str, str]]


def finish(generated: dict[str, Any], facts: RouteFacts) -> dict[str, Any]:
    """The hub's contract from Litestar's document (the argument is not changed)."""
    doc: dict[str, Any] = msgspec.to_builtins(copy.deepcopy(generated))
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    for name, schema in contract_schemas().items():
        schemas.setdefault(name, schema)
    _close_strict_schemas(schemas)
    components["responses"] = problem_responses()
    components["securitySchemes"] = SECURITY_SCHEMES
    doc["paths"].update(protocol_paths())
    bodies = request_bodies()
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                _finish_operation(item[method], method, path, facts, bodies)
    _unique_operation_ids(doc["paths"])
    return doc


def _strict_structs() -> dict[str, type[msgspec.Struct]]:
    """Every Struct that refuses unknown members, by class name and by Litestar's long name
    (module path joined with underscores, used when two classes share a name)."""
    found: dict[str, type[msgspec.Struct]] = {}
    pending: list[type[msgspec.Struct]] = [msgspec.Struct]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if getattr(cls.__struct_config__, "forbid_unknown_fields", False):
            found[cls.__name__] = cls
            found[f"{cls.__module__}.{cls.__qualname__}".replace(".", "_")] = cls
    return found


def _close_strict_schemas(schemas: dict[str, Any]) -> None:
    """`additionalProperties: false` where the server refuses unknown members."""
    strict = _strict_structs()
    for name, schema in schemas.items():
        if name in strict and schema.get("type") == "object":
            schema["additionalProperties"] = False


def _finish_operation(
    op: dict[str, Any],
    method: str,
    path: str,
    facts: RouteFacts,
    bodies: dict[tuple[str, str], dict[str, Any]],
) -> None:
    """Summary, description, body, security and error responses of one operation."""
    _describe(op)
    if (method, path) in bodies:
        op["requestBody"] = bodies[(method, path)]
    if path.startswith("/v1/edge/"):
        op["parameters"] = [*op.get("parameters", []), *signature_headers()]
    public = (method, path) in facts.public
    op["security"] = _security(method, path, public=public)
    for status in _error_statuses(op, method, path, public=public):
        op["responses"][str(status)] = response_ref(status)


def _describe(op: dict[str, Any]) -> None:
    """A sentence as summary (Litestar's default is the handler's CamelCase name) and the
    docstring as description."""
    description = (op.get("description") or "").strip()
    summary = (op.get("summary") or "").strip()
    if not description:
        description = summary
    if " " not in summary and description:
        summary = description.split("\n", 1)[0].split(". ", 1)[0].rstrip(".")[:120]
    op["summary"], op["description"] = summary, description


def _security(method: str, path: str, *, public: bool) -> list[dict[str, list[str]]]:
    if (method, path) in _PUBLIC_SECURITY:
        return _PUBLIC_SECURITY[(method, path)]
    if public:
        return []
    if path.startswith("/v1/edge/"):
        return [{"edgeSignature": []}]
    return BEARER


def _error_statuses(op: dict[str, Any], method: str, path: str, *, public: bool) -> list[int]:
    """Which problem statuses an operation can answer with."""
    statuses = {429, 500, 503}
    if not public or (method, path) in _PUBLIC_SECURITY:
        statuses |= {401}
    if not public:
        statuses |= {403}
    if op.get("parameters") or "{" in path:
        statuses |= {400, 422}  # malformed, or well-formed but unstorable (e.g. NUL)
    if "{" in path:
        statuses |= {404}
    if "requestBody" in op:
        statuses |= {400, 413, 415, 422}
    if method in ("post", "put", "patch", "delete"):
        statuses |= {409}
    if path.startswith("/v1/edge/media"):
        statuses |= {507}
    responses = op.setdefault("responses", {})
    responses.pop("400", None)  # Litestar's own (not a problem document)
    return sorted(s for s in statuses if str(s) not in responses)


def _unique_operation_ids(paths: dict[str, Any]) -> None:
    """Make repeated operationIds unique (a generated client names a function after each)."""
    ops = [item[m] for item in paths.values() for m in METHODS if m in item]
    seen = Counter(op.get("operationId") for op in ops)
    for path, item in paths.items():
        for method in METHODS:
            op = item.get(method)
            if op is not None and seen[op.get("operationId")] > 1:
                words = [w for w in path.strip("/").split("/") if not w.startswith("{")]
                op["operationId"] = method.title() + "".join(w.title() for w in words[1:])
