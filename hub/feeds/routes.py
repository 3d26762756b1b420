"""HTTP and WebSocket routes of the agency feeds (`/v1/feeds`); SOAP lives in soap.py."""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from functools import partial
from typing import Annotated, Any

import msgspec
from litestar import Request, Router, WebSocket, get, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.middleware import DefineMiddleware
from litestar.params import PathParameter, QueryParameter
from litestar.response import Response
from prometheus_client import Counter
from redis.exceptions import RedisError

from hub.feeds.admission import FEED_CHANNEL, MeteredFeedRequests, PageGate
from hub.feeds.live import Subscriber
from hub.feeds.live_access import (
    CLOSE_CAP,
    CLOSE_TRY_LATER,
    Check,
    Closing,
    LivePass,
    SocketLeases,
    agency_refusal,
    lease_seconds,
    recheck,
    token_deadline,
    watch,
)
from hub.feeds.pages import read_page
from hub.feeds.schemas import FeedFilters, FeedPage
from hub.feeds.service import MAX_LIMIT, MAX_WAIT_SECONDS, Reader, read_media, refuse_paused
from hub.feeds.service import resolve_reader as _resolve
from hub.identity.mtls import CLIENT_CERT_KEY
from hub.kit.errors import ForbiddenError, ValidationError
from hub.kit.media_response import image_response
from hub.kit.params import NO_NUL
from hub.policy.guard import current_decision_id, current_subject
from hub.policy.schemas import RequestInfo
from hub.runtime import ServicesDep

AnyConnection = Request[Any, Any, Any] | WebSocket[Any, Any, Any]
Sha256Param = Annotated[str, PathParameter(pattern="^[0-9a-f]{64}$", description="image SHA-256")]
# Items are plain text without NUL (PostgreSQL cannot compare against it: it answered 500).
FilterText = Annotated[str, msgspec.Meta(max_length=128, pattern=NO_NUL)]
LabelList = Annotated[
    list[FilterText] | None,
    QueryParameter(name="class", description="any of these classes", max_items=32),
]
CameraList = Annotated[
    list[FilterText] | None,
    QueryParameter(name="camera", description="any of these cameras", max_items=64),
]


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


@get(
    "/events",
    summary="Released detection events after a cursor (keyset pages)",
    opt={FEED_CHANNEL: "rest"},
)
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
    page would hold the same events under the same policy. Over the process's page budget
    (ingest has priority) it answers 503 `feeds_busy` with Retry-After (ADR 0026)."""
    reader = await resolve_reader(services, request)
    await refuse_paused(services.feeds, reader)
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


@get(
    "/media/{sha256:str}",
    summary="An image as this agency may see it (regions blurred)",
    opt={FEED_CHANNEL: "media"},
)
async def get_media(
    request: Request[Any, Any, Any], services: ServicesDep, sha256: Sha256Param
) -> Response[bytes]:
    """The image with the release decision's blur applied; 404 unless an event this agency
    may see references it (the answer does not reveal whether the image exists)."""
    reader = await resolve_reader(services, request)
    await refuse_paused(services.feeds, reader)
    # An image is page work too: admitted by the gate, metered with its request (admission.py).
    async with services.feeds.gate.admitted("media"):
        shown = await read_media(services.feeds, reader, sha256=sha256)
    image, content_type, decision_id = shown
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
    than the buffer behind is closed with 4008 and resumes over REST with its last cursor.
    The socket is checked again while open (live_access.py) and closed with 4401 (token
    expired or revoked, client disabled), 4403 (policy or agency paused or disabled), 4409
    (what it may see changed), 1013 (could not check) or 4429 (too many sockets)."""
    reader = await resolve_reader(services, socket)
    filters = feed_filters(None, None, classes, cameras)
    refused = await agency_refusal(services.feeds, reader.agency)
    if refused is not None:
        raise ForbiddenError(refused.reason, code="agency_not_active")
    admitted = _live_pass(socket, reader)
    deadline = await token_deadline(services.authn, admitted.headers)
    leases = SocketLeases(
        services.redis,
        cap=services.settings.feeds_live_max_sockets_per_subject,
        lease_seconds=lease_seconds(services.settings.feeds_live_recheck_seconds),
    )
    await socket.accept()
    lease = await _take_lease(socket, services, leases, reader)
    if lease is None:
        return
    try:
        renew = partial(leases.renew, reader.actor, lease)
        await _follow(socket, services, admitted, filters, deadline=deadline, renew=renew)
    finally:
        await leases.give_back(reader.actor, lease)


async def _follow(
    socket: WebSocket[Any, Any, Any],
    services: ServicesDep,
    admitted: LivePass,
    filters: FeedFilters,
    *,
    deadline: float | None,
    renew: Callable[[], Awaitable[None]],
) -> None:
    """Serve one admitted socket: subscribe it, send, re-check it, count it while open."""
    live = services.feeds.live
    gauge = live.metrics.live_sockets.labels(admitted.reader.agency)
    subscriber = await live.subscribe(admitted.reader, filters)
    gauge.inc()
    try:
        warden = partial(
            _warden,
            subscriber,
            partial(recheck, services.feeds, services.authn, admitted),
            services,
            every=services.settings.feeds_live_recheck_seconds,
            deadline=deadline,
            renew=renew,
        )
        await _serve(socket, subscriber, warden, closed=live.metrics.live_closed)
    finally:
        gauge.dec()
        live.unsubscribe(subscriber)


def _live_pass(socket: WebSocket[Any, Any, Any], reader: Reader) -> LivePass:
    """What let this socket in, as the guard saw it, kept for the re-checks."""
    return LivePass(
        headers=dict(socket.headers),
        request=RequestInfo(
            method=str(socket.scope.get("method", "GET")),
            route=socket.scope.get("path_template", socket.url.path),
            path=socket.url.path,
            resource={k: str(v) for k, v in socket.path_params.items()},
        ),
        reader=reader,
        client_cert=(socket.scope.get("state") or {}).get(CLIENT_CERT_KEY),
    )


async def _take_lease(
    socket: WebSocket[Any, Any, Any], services: ServicesDep, leases: SocketLeases, reader: Reader
) -> str | None:
    """This socket's lease, or None after closing it (cap reached, Redis away)."""
    closed = services.feeds.live.metrics.live_closed
    try:
        lease = await leases.take(reader.actor)
    except (RedisError, OSError):
        closed.labels("unavailable").inc()
        await _close(socket, CLOSE_TRY_LATER, "cannot count this subject's sockets now")
        return None
    if lease is None:
        closed.labels("cap").inc()
        reason = f"too many live sockets for this subject (at most {leases.cap})"
        await _close(socket, CLOSE_CAP, reason)
    return lease


async def _warden(
    subscriber: Subscriber,
    check: Check,
    services: ServicesDep,
    *,
    every: float,
    deadline: float | None,
    renew: Callable[[], Awaitable[None]],
) -> None:
    """Re-check the socket until a check says close; then close the subscriber with it."""
    try:
        closing = await watch(
            check, services.feeds.live.changed, every=every, deadline=deadline, on_pass=renew
        )
    except Exception as exc:  # a check that cannot run closes the socket (fail closed)
        closing = Closing(CLOSE_TRY_LATER, f"cannot re-check: {type(exc).__name__}", "unavailable")
    subscriber.close(closing)


async def _serve(
    socket: WebSocket[Any, Any, Any],
    subscriber: Subscriber,
    warden: Callable[[], Coroutine[Any, Any, None]],
    *,
    closed: Counter,
) -> None:
    tasks = {
        asyncio.create_task(_send(socket, subscriber)),
        asyncio.create_task(_drain_client(socket)),
        asyncio.create_task(subscriber.gone.wait()),
        asyncio.create_task(warden()),
    }
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                await task
    closing = subscriber.closing
    closed.labels("client" if closing is None else closing.label).inc()
    if closing is not None and socket.connection_state != "disconnect":
        await _close(socket, closing.code, closing.reason)


async def _close(socket: WebSocket[Any, Any, Any], code: int, reason: str) -> None:
    with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
        await socket.close(code=code, reason=reason)


async def _send(socket: WebSocket[Any, Any, Any], subscriber: Subscriber) -> None:
    while True:
        message = await subscriber.queue.get()
        if message is None or subscriber.dropped:
            return
        await socket.send_data(message, mode="text")  # encoded once for its audience


async def _drain_client(socket: WebSocket[Any, Any, Any]) -> None:
    """Read (and ignore) what the client sends, to notice when it goes away."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await socket.receive_data(mode="text")


def build_router(gate: PageGate) -> Router:
    """The feeds router; its HTTP requests are metered by the process's page gate."""
    return Router(
        path="/v1/feeds",
        tags=["feeds"],
        route_handlers=[get_events, get_media, live],
        # Every HTTP route here (events, media) passes the gate: refused early when hopeless,
        # under the channel its handler names.
        middleware=[DefineMiddleware(MeteredFeedRequests, gate=lambda: gate)],
    )
