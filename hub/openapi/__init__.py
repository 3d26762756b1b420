"""The hub's OpenAPI contract: Litestar's generated document finished with problem+json
errors, security, raw bodies and the non-REST endpoints, served with Swagger UI assets from
the installed `swagger-ui-py` package (no CDN, so `/schema` works offline).

It owns nothing at run time but the finished document's cache; domains never import it.
"""

from hub.openapi.config import openapi_config, schema_assets_router

__all__ = ["openapi_config", "schema_assets_router"]
