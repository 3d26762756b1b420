"""Agency feed readers for the benches: the bench agencies, their bearer tokens, one REST page,
and the HTTP client sessions the benches' load generators use.

Not a benchmark of its own (the leading underscore keeps `make bench` from running it).
`feeds.py` measures the feeds alone; `ingest.py --feed-readers N` runs readers beside ingest.
"""

import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec

from hub.identity.tokens import TokenEntry, append_token, new_token, token_hash

FEED_PATH = "/v1/feeds/events"
PAGE_LIMIT = 100
# name -> (jurisdictions, clearance, purpose): the registry attributes release policy reads.
AGENCIES = {
    "police-north": (["north"], 3, "investigation"),
    "transit-authority": (["central"], 2, "traffic"),
    "city-analytics": (["central"], 1, "statistics"),
}


async def register_agencies(conn: asyncpg.Connection, names: Iterable[str] = AGENCIES) -> None:
    """Register bench agencies (REST, subscribed to everything) in the scratch database; a
    push endpoint where nothing listens, as no worker runs to deliver to it."""
    for name in names:
        jurisdictions, clearance, purpose = AGENCIES[name]
        await conn.execute(
            """INSERT INTO agency (id, name, adapter_kind, endpoint, purpose, jurisdictions,
               clearance) VALUES ($1, $2, 'rest', 'http://127.0.0.1:9/', $3, $4, $5)""",
            uuid.uuid4(), name, purpose, jurisdictions, clearance,
        )  # fmt: skip


def agency_token(tokens_file: Path, agency: str) -> str:
    """A new agency client bearer token, appended to the API's tokens file."""
    jurisdictions, clearance, purpose = AGENCIES[agency]
    token = new_token()
    append_token(
        tokens_file,
        TokenEntry(
            sha256=token_hash(token), subject=f"bench-{agency}-{uuid.uuid4().hex[:6]}",
            kind="client", roles=["agency"], agency=agency, jurisdictions=jurisdictions,
            clearance=clearance, purpose=purpose,
        ),
    )  # fmt: skip
    return token


def session(base: str, connections: int, *, timeout: float = 60.0) -> aiohttp.ClientSession:
    """An HTTP client for a load generator: up to `connections` kept-alive connections.

    aiohttp rather than httpx: the load generator shares the machine's two cores with the hub,
    and aiohttp's client spends about a third of httpx's CPU on a request (bench/README), CPU
    the hub then has for itself."""
    return aiohttp.ClientSession(
        base_url=base,
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=timeout),
        skip_auto_headers=("User-Agent",),
    )


# A failure to reach the hub (refused, reset, timed out), as opposed to an answer.
TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError)


class Refused(Exception):
    """The hub answered with an error status (a 503 `feeds_busy` carries a Retry-After)."""

    def __init__(self, status: int, retry_after: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


async def get_page(
    http: aiohttp.ClientSession, token: str, cursor: str | None
) -> tuple[int, str, bool]:
    """One page of `PAGE_LIMIT`: items released, next cursor, has_more (raises `Refused` on
    an error status)."""
    params: dict[str, Any] = {"limit": PAGE_LIMIT}
    if cursor:
        params["cursor"] = cursor
    async with http.get(
        FEED_PATH, params=params, headers={"Authorization": f"Bearer {token}"}
    ) as response:
        content = await response.read()
        if response.status >= 400:
            raise Refused(response.status, response.headers.get("retry-after", ""))
    body = _PAGE.decode(content)
    return len(body.items), body.next_cursor, body.has_more


class _PageSummary(msgspec.Struct):
    """What a reader needs of a page: items are counted, not parsed (the load generator
    shares the hub's cores, so it should spend as little of them as it can)."""

    items: list[msgspec.Raw]
    next_cursor: str
    has_more: bool


_PAGE = msgspec.json.Decoder(_PageSummary)
