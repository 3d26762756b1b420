"""What the handlers cannot tell Litestar: bodies they read raw, the headers that carry an
edge signature, and the endpoints OpenAPI has no verb for (WebSocket, SOAP, /metrics)."""

from typing import Any

import msgspec

from hub.contracts.detection_v1 import EventBatch

FORM = "application/x-www-form-urlencoded"
_BINARY = {"type": "string", "contentMediaType": "application/octet-stream"}


def _binary_body(types: tuple[str, ...], description: str) -> dict[str, Any]:
    return {
        "required": True,
        "description": description,
        "content": {kind: {"schema": _BINARY} for kind in types},
    }


_TOKEN_FORM: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["grant_type"],
    "properties": {
        "grant_type": {
            "type": "string",
            "enum": ["client_credentials", "password", "refresh_token"],
        },
        "client_id": {
            "type": "string",
            "description": "client_credentials, unless sent by HTTP Basic",
        },
        "client_secret": {"type": "string", "description": "client_credentials, unless HTTP Basic"},
        "username": {"type": "string", "maxLength": 128, "description": "password grant"},
        "password": {"type": "string", "maxLength": 1024, "description": "password grant"},
        "totp": {
            "type": "string",
            "maxLength": 10,
            "description": "password grant: the TOTP code of users enrolled in it (admins always)",
        },
        "refresh_token": {"type": "string", "description": "refresh_token grant"},
    },
}
_REVOKE_FORM: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["token"],
    "properties": {
        "token": {
            "type": "string",
            "description": "an access or refresh token issued to the caller",
        },
        "token_type_hint": {"type": "string", "enum": ["access_token", "refresh_token"]},
        "client_id": {"type": "string"},
        "client_secret": {"type": "string"},
    },
}


def request_bodies() -> dict[tuple[str, str], dict[str, Any]]:
    """Bodies of the routes that read `request.body()` themselves, by (method, path)."""
    return {
        ("post", "/v1/edge/events"): {
            "required": True,
            "description": "A batch of `hub.detection.v1` events, signed (RFC 9421) with "
            "`Content-Digest` covering these exact bytes.",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/EventBatch"}}
            },
        },
        ("post", "/v1/edge/media/{sha256}"): _binary_body(
            ("image/jpeg", "image/png"), "The snapshot; its SHA-256 must equal the path's."
        ),
        ("post", "/v1/admin/policy/bundles"): _binary_body(
            ("application/gzip", "application/octet-stream"), "An OPA bundle `.tar.gz`."
        ),
        ("post", "/v1/incidents/evidence/verify"): _binary_body(
            ("application/zip",), "An evidence package exported by this hub."
        ),
        ("post", "/oauth/token"): {
            "required": True,
            "content": {FORM: {"schema": _TOKEN_FORM}},
        },
        ("post", "/oauth/revoke"): {
            "required": True,
            "content": {FORM: {"schema": _REVOKE_FORM}},
        },
    }


def contract_schemas() -> dict[str, Any]:
    """JSON Schemas of the event contract, as components (refs point at components)."""
    _, components = msgspec.json.schema_components(
        (EventBatch,), ref_template="#/components/schemas/{name}"
    )
    return components


def signature_headers() -> list[dict[str, Any]]:
    """The header parameters of a signed edge upload (RFC 9421, RFC 9530)."""
    text = {"type": "string"}
    return [
        {
            "name": "Signature-Input",
            "in": "header",
            "required": True,
            "schema": text,
            "description": "RFC 9421: covers `@method`, `@target-uri`, `content-digest`; params "
            '`created`, `keyid` (the node id), `nonce`, `alg="ed25519"`.',
        },
        {
            "name": "Signature",
            "in": "header",
            "required": True,
            "schema": text,
            "description": "RFC 9421 Ed25519 signature by the node's registered key.",
        },
        {
            "name": "Content-Digest",
            "in": "header",
            "required": True,
            "schema": text,
            "description": "RFC 9530 `sha-256=:<base64>:` of the body.",
        },
        {
            "name": "Hub-Spool-Depth",
            "in": "header",
            "required": False,
            "schema": {"type": "integer", "minimum": 0},
            "description": "Events waiting in the node's spool (telemetry, not signed).",
        },
    ]


def protocol_paths() -> dict[str, Any]:
    """WebSocket, SOAP and Prometheus endpoints, described as far as OpenAPI can."""
    return {
        "/v1/feeds/live": {
            "get": {
                "tags": ["feeds"],
                "operationId": "LiveFeedWebSocket",
                "summary": "Live feed of released events over a WebSocket",
                "description": "Open a WebSocket (`Upgrade: websocket`) with the agency's bearer "
                "token. Each message is one released event as JSON, the same record as a "
                "`/v1/feeds/events` page item. A subscriber that falls behind is closed with "
                "4008; a credential refused later closes it with 1008. A plain HTTP GET "
                "answers 405: OpenAPI cannot describe the messages themselves.",
                "x-websocket": True,
                "responses": {
                    "101": {"description": "Switching protocols to a WebSocket."},
                    "405": {"$ref": "#/components/responses/MethodNotAllowed"},
                },
            }
        },
        "/soap/feed": {
            "get": {
                "tags": ["feeds"],
                "operationId": "SoapFeedWsdl",
                "summary": "The SOAP feed's WSDL (public contract)",
                "description": "`GET /soap/feed?wsdl`: the WSDL 1.1 of the SOAP feed "
                "(operations GetEvents and Acknowledge, document/literal). Its address is "
                "HUB_PUBLIC_BASE_URL, never the request's Host. Calls are SOAP 1.1 envelopes "
                "POSTed to `/soap/feed` (`text/xml`, at most 64 KiB) with the agency's bearer "
                "token, described by this WSDL rather than here: faults are 500 "
                "`soap:Client` for a bad request, as SOAP 1.1 requires, and 401/403/429/503 "
                "for credentials, policy, limits and outages.",
                "externalDocs": {"url": "/soap/feed?wsdl", "description": "the WSDL"},
                "parameters": [
                    {
                        "name": "wsdl",
                        "in": "query",
                        "required": False,
                        "allowEmptyValue": True,
                        "schema": {"type": "string", "maxLength": 0},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "WSDL",
                        "content": {"text/xml": {"schema": {"type": "string"}}},
                    }
                },
            },
        },
        "/metrics": {
            "get": {
                "tags": ["ops"],
                "operationId": "PrometheusMetrics",
                "summary": "Prometheus metrics (text exposition format)",
                "description": "Every metric of this host's API and worker processes in the "
                "Prometheus text format 0.0.4 (operators and admins).",
                "responses": {
                    "200": {
                        "description": "metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }
