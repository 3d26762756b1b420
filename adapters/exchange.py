"""One HTTP request and its bounded answer, straight through an adapter's guarded transport.

`httpx.AsyncClient` adds per request what deliveries never use: URL and header merging with
client defaults, auth and redirect loops, a cookie jar fed from every answer. Adapters hand
their request to the transport (adapters/egress.py: egress checks, capped decoded answers,
adapters/http11.py: the connection) and read the answer here; the exceptions are httpx's,
as through a client.
"""

from collections.abc import Mapping

import httpx
import msgspec

from adapters.egress import GuardedAsyncTransport


class Answer(msgspec.Struct, frozen=True, kw_only=True):
    """What an agency answered: status, headers and at most the bounded body."""

    status_code: int
    headers: httpx.Headers
    body: bytes
    truncated: bool = False


async def exchange(
    transport: GuardedAsyncTransport,
    url: str,
    *,
    content: bytes,
    headers: Mapping[str, str],
    timeout: float,  # noqa: ASYNC109 - connect, then send and answer, each bounded by it
    max_bytes: int,
) -> Answer:
    """POST `content` to `url`; the answer's body is kept up to `max_bytes` (`truncated` when
    there was more; the transport refuses more than its own cap outright)."""
    status, answer_headers, body = await transport.send(
        "POST", url, content=content, headers=headers.items(), timeout=timeout
    )
    return Answer(
        status_code=status,
        headers=httpx.Headers(answer_headers),
        body=body[:max_bytes],
        truncated=len(body) > max_bytes,
    )
