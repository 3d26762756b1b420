"""The demo agency as one Litestar app: the receivers it was asked to be, plus its inbox."""

from typing import Literal

import msgspec
from litestar import Litestar, Router, get, post
from litestar.params import JSONBody
from litestar.response import Response

from hub.demo_agency.inbox import Inbox, Received
from hub.demo_agency.options import ReceiverOptions

Kind = Literal["rest", "soap", "xml"]
KINDS: tuple[Kind, ...] = ("rest", "soap", "xml")

# Where each receiver listens on the demo agency's server.
PATHS: dict[Kind, str] = {"rest": "/rest/events", "soap": "/soap/agency", "xml": "/xml/alerts"}


class FailRequest(msgspec.Struct, frozen=True):
    """`POST /_inbox/fail`: answer the next `count` messages with `status`."""

    count: int
    status: int


def _receiver(kind: Kind, inbox: Inbox, options: ReceiverOptions) -> Router:
    # Imported here so a demo agency of one kind needs only that kind's libraries.
    if kind == "rest":
        from hub.demo_agency import rest

        return rest.router(inbox, options)
    if kind == "soap":
        from hub.demo_agency import soap

        return soap.router(inbox, options)
    from hub.demo_agency import xml

    return xml.router(inbox, options)


def _inbox_router(inbox: Inbox) -> Router:
    @get("/", sync_to_thread=False)
    def summary() -> Response[bytes]:
        return Response(msgspec.json.encode(inbox.summary()), media_type="application/json")

    @get("/items", sync_to_thread=False)
    def items() -> Response[bytes]:
        return Response(msgspec.json.encode(inbox.items()), media_type="application/json")

    @post("/fail", sync_to_thread=False, status_code=204)
    def fail(data: JSONBody[FailRequest]) -> None:
        inbox.fail_next(data.count, data.status)

    @post("/clear", sync_to_thread=False, status_code=204)
    def clear() -> None:
        inbox.clear()

    return Router(path="/_inbox", route_handlers=[summary, items, fail, clear])


def create_receiver_app(
    kinds: list[Kind], options: ReceiverOptions, inbox: Inbox | None = None
) -> Litestar:
    """An app serving the given receivers and `/_inbox` (read back what arrived)."""
    box = inbox or Inbox()
    routers = [_receiver(kind, box, options) for kind in kinds]
    app = Litestar(route_handlers=[*routers, _inbox_router(box)], openapi_config=None)
    app.state["inbox"] = box
    return app


__all__ = ["KINDS", "PATHS", "Inbox", "Kind", "Received", "create_receiver_app"]
