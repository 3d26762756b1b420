"""One HTTP request and its bounded answer, straight through an adapter's guarded transport.

`httpx.AsyncClient` adds per request what deliveries never use: URL and header merging with
client defaults, auth and redirect loops, a cookie jar fed from every answer. Together they
cost about as much as the transport's own work, per delivery. Adapters hand their request to
the transport (adapters/egress.py: egress checks, capped decoded answers) and read the answer
here; the exceptions are httpx's, as through a client.
"""

from collections.abc import Mapping
from functools import lru_cache

import httpx
import msgspec


class Answer(msgspec.Struct, frozen=True, kw_only=True):
    """What an agency answered (to `request`): status, headers and at most the bounded body."""

    request: httpx.Request
    status_code: int
    headers: httpx.Headers
    body: bytes
    truncated: bool = False


async def exchange(
    transport: httpx.AsyncBaseTransport,
    url: str,
    *,
    content: bytes,
    headers: Mapping[str, str],
    timeout: float,  # noqa: ASYNC109 - httpx's per-phase bound, passed on
    max_bytes: int,
) -> Answer:
    """POST `content` to `url`; the answer's body is read up to `max_bytes` (`truncated` when
    there was more), and the connection goes back to the pool either way."""
    request = httpx.Request(
        "POST",
        _parsed(url),
        content=content,
        headers=headers,
        extensions={"timeout": httpx.Timeout(timeout).as_dict()},
    )
    response = await transport.handle_async_request(request)
    try:
        body, truncated = await _read_bounded(response, max_bytes)
    finally:
        await response.aclose()
    return Answer(
        request=request,
        status_code=response.status_code,
        headers=response.headers,
        body=body,
        truncated=truncated,
    )


@lru_cache(maxsize=1024)
def _parsed(url: str) -> httpx.URL:
    # An agency has one or two URLs; parsing one (httpx's validating parser) cost more than
    # building the rest of the request. httpx.URL is immutable, so one object serves all.
    return httpx.URL(url)


async def _read_bounded(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    stream = response.stream
    assert isinstance(stream, httpx.AsyncByteStream)  # noqa: S101 - a transport's answer
    async for chunk in stream:
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True
    return b"".join(chunks), False
