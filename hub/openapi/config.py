"""The OpenAPI configuration `create_app` uses: the finished JSON document at
`/schema/openapi.json` and a Swagger UI page at `/schema` whose scripts, styles and icon are
served by the hub itself from `/schema/assets`."""

from importlib.resources import files
from pathlib import Path
from typing import Any

from litestar import Request, Router
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Server
from litestar.routes import HTTPRoute
from litestar.serialization import encode_json
from litestar.static_files import create_static_files_router

from hub.openapi.document import RouteFacts, finish
from hub.openapi.problems import warm_codes
from hub.settings import Settings

ASSETS = "/schema/assets"
DESCRIPTION = """\
The hub takes signed detection events from edge nodes (`POST /v1/edge/events`, RFC 9421
signatures), decides with policy what each agency may see, delivers it, and lets agencies pull
it (REST feed, the live WebSocket `/v1/feeds/live`, and SOAP: [WSDL](/soap/feed?wsdl)).

Credentials: edge nodes sign each request; agencies and console users send a bearer access
token from `/oauth/token` (client_credentials; password + TOTP). Every error is RFC 9457
`application/problem+json` whose `type` is stable (`/problems/<code>`). Metrics for
Prometheus: `GET /metrics`."""


class FinishedDocument:
    """Builds the finished document once from Litestar's and the app's routes."""

    def __init__(self) -> None:
        self._doc: dict[str, Any] | None = None
        self._json: bytes | None = None

    def get(self, request: Request[Any, Any, Any], generated: dict[str, Any]) -> dict[str, Any]:
        """The finished document for this app (built on first use)."""
        if self._doc is None:
            self._doc = finish(generated, route_facts(request.app.routes))
        return self._doc

    def json(self, request: Request[Any, Any, Any], generated: dict[str, Any]) -> bytes:
        """The finished document encoded once."""
        if self._json is None:
            self._json = encode_json(self.get(request, generated))
        return self._json


def route_facts(routes: list[Any]) -> RouteFacts:
    """Which (method, path) operations are public (`opt={"public": True}`)."""
    public = {
        (method.lower(), route.path_format)
        for route in routes
        if isinstance(route, HTTPRoute)
        for handler in route.route_handlers
        if handler.opt.get("public")
        for method in handler.http_methods
    }
    return RouteFacts(public=frozenset(public))


class HubJsonPlugin(JsonRenderPlugin):
    """`/schema/openapi.json`: the finished document."""

    def __init__(self, document: FinishedDocument) -> None:
        super().__init__()
        self.document = document

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """The finished document as JSON."""
        return self.document.json(request, openapi_schema)


class HubSwaggerPlugin(SwaggerRenderPlugin):
    """`/schema`: Swagger UI on the finished document, with the hub's own copies of its
    assets (a page that works on a network without internet access)."""

    def __init__(self, document: FinishedDocument) -> None:
        super().__init__(
            path=["/", "/swagger"],
            js_url=f"{ASSETS}/swagger-ui-bundle.js",
            css_url=f"{ASSETS}/swagger-ui.css",
            standalone_preset_js_url=f"{ASSETS}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{ASSETS}/favicon-32x32.png'>",
        )
        self.document = document

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """The page, embedding the finished document."""
        return super().render(request, self.document.get(request, openapi_schema))


def swagger_ui_dir() -> Path:
    """Where the installed `swagger-ui-py` package keeps Swagger UI's built files."""
    return Path(str(files("swagger_ui") / "static"))


def schema_assets_router() -> Router:
    """Serves Swagger UI's files under /schema/assets (public, like the document)."""
    return create_static_files_router(
        path=ASSETS,
        directories=[swagger_ui_dir()],
        opt={"public": True},
        include_in_schema=False,
        name="schema-assets",
    )


def openapi_config(settings: Settings) -> OpenAPIConfig:
    """The document's metadata and the two render plugins sharing one finished document."""
    document = FinishedDocument()
    warm_codes()
    return OpenAPIConfig(
        title="hub",
        version="1",
        description=DESCRIPTION,
        path="/schema",
        servers=[Server(url=settings.public_base_url)] if settings.public_base_url else [],
        use_handler_docstrings=True,
        render_plugins=[HubSwaggerPlugin(document), HubJsonPlugin(document)],
    )
