"""HTTP and WebSocket routes of the agency feeds (`/v1/feeds`); SOAP lives in soap.py."""

import asyncio
import contextlib
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Router, WebSocket, get, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.params import PathParameter, QueryParameter
from litestar.response import Response

from hub.feeds.live import SLOW_CONSUMER_CLOSE, Subscriber
from hub.feeds.schemas import FeedFilters, FeedPage
from hub.feeds.service import MAX_LIMIT, MAX_WAIT_SECONDS, Reader, read_media, read_page
from hub.feeds.service import resolve_reader as _resolve
from hub.kit.errors import ValidationError
from hub.kit.media_response import image_response
from hub.policy.guard import current_decision_id, current_subject
from hub.runtime import ServicesDep

AnyConnection = Request[Any, Any, Any] | WebSocket[Any, Any, Any]
Sha256Param = Annotated[str, PathParameter(pattern="^[0-9a-f]{64}$", description="image SHA-256")]
LabelList = Annotated[
    list[str] | None, QueryParameter(name="class", description="any of these classes", max_items=32)
]
CameraList = Annotated[
    list[str] | None,
    QueryParameter(name="camera", description="any of these cameras", max_items=64),
]
_encoder = msgspec.json.Encoder()


async def resolve_reader(services: ServicesDep, connection: AnyConnection) -> Reader:
    """The agency reader behind this request (the guard has authenticated it)."""
    return await _resolve(
        services.feeds,
        current_subject(connection),
        decision_id=current_decision_id(connection),
    )


def feed_filters(
    since: datetime | None,
    until: datetime | None,
    classes: list[str] | None,
    cameras: list[str] | None,
) -> FeedFilters:
    """Filters from query parameters; times must carry a UTC offset."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise ValidationError(f"{name} must carry a UTC offset", code="validation_failed")
    return FeedFilters(
        since=since,
        until=until,
        classes=sorted(set(classes or [])),
        cameras=sorted(set(cameras or [])),
    )


@get("/events", summary="Released detection events after a cursor (keyset pages)")
async def get_events(
    request: Request[Any, Any, Any],
    services: ServicesDep,
    cursor: Annotated[str | None, QueryParameter(max_length=512)] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = 100,
    wait: Annotated[float, QueryParameter(ge=0, le=MAX_WAIT_SECONDS)] = 0.0,
    since: Annotated[datetime | None, QueryParameter(description="captured at or after")] = None,
    until: Annotated[datetime | None, QueryParameter(description="captured before")] = None,
    classes: LabelList = None,
    cameras: CameraList = None,
) -> Response[FeedPage | bytes]:
    """A page of events this agency may see, each redacted by `release()` and carrying its
    decision id. `wait` long-polls for new events; `If-None-Match` answers 304 when the
    page would hold the same events under the same policy."""
    reader = await resolve_reader(services, request)
    result = await read_page(
        services.feeds,
        reader,
        cursor=cursor,
        filters=feed_filters(since, until, classes, cameras),
        limit=limit,
        wait=wait,
        if_none_match=request.headers.get("if-none-match"),
    )
    headers = {"ETag": result.etag, "Cache-Control": "private, no-cache"}
    if result.page is None:
        return Response(b"", status_code=304, headers=headers)
    return Response(result.page, headers=headers)


@get("/media/{sha256:str}", summary="An image as this agency may see it (regions blurred)")
async def get_media(
    request: Request[Any, Any, Any], services: ServicesDep, sha256: Sha256Param
) -> Response[bytes]:
    """The image with the release decision's blur applied; 404 unless an event this agency
    may see references it (the answer does not reveal whether the image exists)."""
    reader = await resolve_reader(services, request)
    image, content_type, decision_id = await read_media(services.feeds, reader, sha256=sha256)
    headers = {"X-Decision-Id": decision_id, "Cache-Control": "private, no-store"}
    return image_response(image, content_type, headers=headers)  # nosniff, proven type only


@websocket("/live")
async def live(
    socket: WebSocket[Any, Any, Any],
    services: ServicesDep,
    classes: LabelList = None,
    cameras: CameraList = None,
) -> None:
    """New events as they are stored, released for this agency; a client that falls more
    than the buffer behind is closed with 4008 and resumes over REST with its last cursor."""
    reader = await resolve_reader(services, socket)
    subscriber = await services.feeds.live.subscribe(
        reader, feed_filters(None, None, classes, cameras)
    )
    try:
        await socket.accept()
        await _serve(socket, subscriber)
    finally:
        services.feeds.live.unsubscribe(subscriber)


async def _serve(socket: WebSocket[Any, Any, Any], subscriber: Subscriber) -> None:
    sender = asyncio.create_task(_send(socket, subscriber))
    receiver = asyncio.create_task(_drain_client(socket))
    dropped = asyncio.create_task(subscriber.gone.wait())
    try:
        await asyncio.wait({sender, receiver, dropped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sender, receiver, dropped):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                await task
    if subscriber.dropped and socket.connection_state != "disconnect":
        reason = f"slow consumer: more than {subscriber.buffer} messages behind"
        with contextlib.suppress(WebSocketDisconnect, OSError):
            await socket.close(code=SLOW_CONSUMER_CLOSE, reason=reason)


async def _send(socket: WebSocket[Any, Any, Any], subscriber: Subscriber) -> None:
    while True:
        message = await subscriber.queue.get()
        if message is None or subscriber.dropped:
            return
        await socket.send_data(_encoder.encode(message).decode(), mode="text")


async def _drain_client(socket: WebSocket[Any, Any, Any]) -> None:
    """Read (and ignore) what the client sends, to notice when it goes away."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await socket.receive_data(mode="text")


def build_router() -> Router:
    """The feeds router."""
    return Router(path="/v1/feeds", tags=["feeds"], route_handlers=[get_events, get_media, live])
