"""The SOAP 1.1 feed (`/soap/feed`): `GetEvents(cursor, limit)` and `Acknowledge(seq...)`.

Document/literal, described by feed.wsdl (served at `GET /soap/feed?wsdl`, public: it is a
contract, not data). Calls authenticate like REST (bearer token in the HTTP header) and pass
the same policy guard; bodies are parsed only through `parse_untrusted`, bounded in elements,
attributes and depth, and validated against the WSDL's own schema by libxml2 in a one-thread
pool with a time budget (never on the event loop). Faults: `soap:Client` for anything wrong
with the request (HTTP 500 as SOAP 1.1 requires, 401/403 kept for credentials and policy),
`soap:Server` for ours.
"""

from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import msgspec
import structlog
from litestar import Request, Router, get, post
from litestar.exceptions import HTTPException
from litestar.middleware import DefineMiddleware
from litestar.response import Response
from litestar.types import Scope
from lxml import etree
from lxml.builder import ElementMaker

from hub.feeds.admission import MeteredFeedRequests, PageGate
from hub.feeds.pages import read_page
from hub.feeds.schemas import FeedFilters, FeedPage
from hub.feeds.service import Reader, acknowledge, refuse_paused, resolve_reader
from hub.kit.errors import HubError
from hub.kit.offload import Offloader
from hub.kit.problems import DEPENDENCY_ERRORS
from hub.kit.soap import (
    XML_MEDIA_TYPE,
    SoapFaultError,
    body_payload,
    envelope,
    fault_envelope,
    validate,
    wsdl_at,
    wsdl_schema,
)
from hub.policy.guard import current_decision_id, current_subject
from hub.runtime import ServicesDep
from hub.settings import Settings

TNS = "urn:hub:feeds:v1"
PATH = "/soap/feed"
MAX_BODY_BYTES = 64 * 1024  # a GetEvents or an Acknowledge of 1000 positions is far smaller
DEFAULT_LIMIT = 100
VALIDATION_BUDGET_SECONDS = 2.0

_TNS = ElementMaker(namespace=TNS, nsmap={"tns": TNS})
log = structlog.get_logger("hub.feeds")


@dataclass(frozen=True, slots=True)
class FeedService:
    """The packaged WSDL, its compiled schema and the one thread that validates with it."""

    wsdl: bytes
    schema: etree.XMLSchema
    validator: Offloader

    def wsdl_for(self, location: str) -> bytes:
        """The WSDL with its soap:address pointing at `location`."""
        return wsdl_at(self.wsdl, location=location)


def load_service() -> FeedService:
    """Read feed.wsdl and compile its schema (nothing fetched from anywhere)."""
    data = files("hub.feeds").joinpath("feed.wsdl").read_bytes()
    # One thread: a libxml2 validator must not be shared between threads at once.
    validator = Offloader(
        "soap-validation", workers=1, queue=32, budget_seconds=VALIDATION_BUDGET_SECONDS
    )
    return FeedService(wsdl=data, schema=wsdl_schema(data), validator=validator)


async def get_events(
    services: ServicesDep, request: Request[Any, Any, Any], call: etree._Element
) -> bytes:
    """Answer one GetEvents call (a paused agency gets a Client fault, `agency_paused`)."""
    reader = await _reader(services, request)
    await refuse_paused(services.feeds, reader)
    cursor = call.findtext(f"{{{TNS}}}cursor") or None
    limit_text = call.findtext(f"{{{TNS}}}limit")
    result = await read_page(
        services.feeds,
        reader,
        cursor=cursor.strip() if cursor else None,
        filters=FeedFilters(),
        limit=int(limit_text) if limit_text else DEFAULT_LIMIT,
        channel="soap",
    )
    page = result.page
    if page is None:  # only with If-None-Match, which SOAP calls never send
        raise SoapFaultError("Server", "no page")
    return envelope(_page_element(page))


def _page_element(page: FeedPage) -> etree._Element:
    events = [
        _TNS.event(
            _TNS.seq(str(item.seq)),
            _TNS.eventId(str(item.event_id)),
            _TNS.decisionId(item.decision_id),
            _TNS.record(msgspec.json.encode(item.record).decode()),
        )
        for item in page.items
    ]
    return _TNS.GetEventsResponse(
        *events,
        _TNS.nextCursor(page.next_cursor),
        _TNS.hasMore("true" if page.has_more else "false"),
    )


async def acknowledge_call(
    services: ServicesDep, request: Request[Any, Any, Any], call: etree._Element
) -> bytes:
    """Answer one Acknowledge call."""
    reader = await _reader(services, request)
    shown = [int(node.text or "0") for node in call.findall(f"{{{TNS}}}seq")]
    result = await acknowledge(services.feeds, reader, shown=shown)
    answer = _TNS.AcknowledgeResponse(
        _TNS.acknowledged(str(result.acknowledged)),
        _TNS.alreadyAcknowledged(str(result.already_acknowledged)),
    )
    return envelope(answer)


async def _reader(services: ServicesDep, request: Request[Any, Any, Any]) -> Reader:
    """The agency reader behind this call (the guard has authenticated it)."""
    return await resolve_reader(
        services.feeds, current_subject(request), decision_id=current_decision_id(request)
    )


OPERATIONS = {f"{{{TNS}}}GetEvents": get_events, f"{{{TNS}}}Acknowledge": acknowledge_call}


def fault_response(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """Every error on the SOAP route, as a SOAP 1.1 fault."""
    status = 500
    if isinstance(exc, SoapFaultError):
        fault = exc
    elif isinstance(exc, HubError | HTTPException):
        code = exc.status if isinstance(exc, HubError) else exc.status_code
        detail = exc.detail
        fault = SoapFaultError("Client" if code < 500 else "Server", str(detail)[:300])
        status = code if code in (401, 403, 429, 503) else 500
    else:
        log.exception("SOAP feed call failed", error=repr(exc)[:200])
        fault = SoapFaultError("Server", "internal error; try again later")
    retry_after = getattr(exc, "retry_after", None)  # busy or unavailable: when to ask again
    headers = {"Retry-After": str(retry_after)} if isinstance(retry_after, int) else None
    return Response(
        fault_envelope(fault), status_code=status, media_type=XML_MEDIA_TYPE, headers=headers
    )


def listening_url(scope: Scope) -> str:
    """The address this server listens on (from the socket, never the client's Host)."""
    host, port = scope.get("server") or ("127.0.0.1", 80)
    host = f"[{host}]" if ":" in str(host) else str(host)
    return f"{scope.get('scheme', 'http')}://{host}:{port}"


def build_router(settings: Settings, gate: PageGate) -> Router:
    """`GET /soap/feed?wsdl` (public) and `POST /soap/feed` (guarded like every route); its
    requests are metered by the process's page gate, as the REST feed's are."""
    service = load_service()

    @get("/", opt={"public": True}, include_in_schema=False)
    async def wsdl(request: Request[Any, Any, Any]) -> Response[bytes]:
        base = settings.public_base_url or listening_url(request.scope)
        return Response(service.wsdl_for(base.rstrip("/") + PATH), media_type=XML_MEDIA_TYPE)

    @post("/", request_max_body_size=MAX_BODY_BYTES, status_code=200, include_in_schema=False)
    async def call(request: Request[Any, Any, Any], services: ServicesDep) -> Response[bytes]:
        _, payload = body_payload(await request.body(), max_bytes=MAX_BODY_BYTES)
        operation = OPERATIONS.get(str(payload.tag))
        if operation is None:
            raise SoapFaultError("Client", "unknown operation")
        await service.validator.run(validate, payload, service.schema)
        answer = await operation(services, request, payload)
        return Response(answer, media_type=XML_MEDIA_TYPE)

    return Router(
        path=PATH,
        tags=["feeds"],
        route_handlers=[wsdl, call],
        middleware=[DefineMiddleware(MeteredFeedRequests, gate=lambda: gate)],
        # Every error a SOAP client can meet, including the app's own kinds, as a fault.
        exception_handlers=dict.fromkeys(
            (SoapFaultError, HubError, HTTPException, *DEPENDENCY_ERRORS, Exception), fault_response
        ),
    )
