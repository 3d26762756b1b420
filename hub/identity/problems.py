"""Problem+json answers sent by identity's ASGI middleware (before any route handler runs)."""

import msgspec
from litestar.types import HTTPScope, Send, WebSocketScope

from hub.kit.problems import PROBLEM_MEDIA_TYPE, Problem, problem_type


async def send_problem(
    scope: HTTPScope | WebSocketScope,
    send: Send,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
) -> None:
    """Answer an HTTP request with an RFC 9457 document (a WebSocket is closed with 1008)."""
    if str(scope["type"]) == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": code})
        return
    body = msgspec.to_builtins(
        Problem(
            type=problem_type(code),
            title=title,
            status=status,
            detail=detail,
            instance=scope["path"],
        )
    )
    body["code"] = code
    raw = msgspec.json.encode(body)
    fields = [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(raw)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": fields})
    await send({"type": "http.response.body", "body": raw, "more_body": False})
