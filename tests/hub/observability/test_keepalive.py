"""Keep-alive connections end after `HUB_API_KEEPALIVE_REQUESTS` requests, and on every
response while the process drains (ADR 0031): the rule, then a real `hub api` closing them."""

import asyncio
import signal
from pathlib import Path

import httpx
import msgspec
import pytest

from hub.observability.drain import (
    BUSY_MIN,
    MAX_COUNTED_CONNECTIONS,
    ConnectionRecycler,
    Drain,
)
from hub.settings import Settings
from tests.hub.observability.processes import HubProcess


def test_a_connection_closes_on_its_limit_th_request_and_its_count_starts_over() -> None:
    recycler = ConnectionRecycler(limit=3, drain=Drain())
    one, other = ("10.0.0.1", 40000), ("10.0.0.1", 40001)
    assert [recycler.closes(one) for _ in range(3)] == [False, False, True]
    assert recycler.closes(other) is False  # counted on its own
    assert [recycler.closes(one) for _ in range(3)] == [False, False, True]


def test_without_a_limit_or_a_peer_nothing_closes_until_the_process_drains() -> None:
    drain = Drain()
    unlimited = ConnectionRecycler(limit=0, drain=drain)
    limited = ConnectionRecycler(limit=1, drain=drain)
    assert not any(unlimited.closes(("10.0.0.1", 1)) for _ in range(1_000))
    assert limited.closes(None) is False  # no peer address (a Unix socket): not counted
    drain.begin()
    assert unlimited.closes(("10.0.0.1", 1)) is True
    assert limited.closes(None) is True


def test_a_busy_worker_sharing_the_socket_closes_a_connection_sooner() -> None:
    drain = Drain()
    shared = ConnectionRecycler(limit=100, drain=drain, shared=True)
    alone = ConnectionRecycler(limit=100, drain=drain, shared=False)
    peer = ("10.0.0.3", 5000)
    # Idle otherwise: only the limit counts.
    assert not any(shared.closes(peer) for _ in range(BUSY_MIN + 5))
    drain.enter()  # another request is being served when the next ones arrive
    assert shared.closes(peer) is True
    assert [shared.closes(peer) for _ in range(BUSY_MIN)] == [False] * (BUSY_MIN - 1) + [True]
    # A single worker has nowhere to send the connection: only the limit counts.
    assert not any(alone.closes(peer) for _ in range(99))
    assert alone.closes(peer) is True


def test_the_counts_kept_are_bounded() -> None:
    recycler = ConnectionRecycler(limit=2, drain=Drain())
    for port in range(MAX_COUNTED_CONNECTIONS + 5):
        recycler.closes(("10.0.0.2", port))
    assert len(recycler._served) <= MAX_COUNTED_CONNECTIONS


class Ports:
    """The client's own port of the connection each response came over, noted as the
    response's headers arrive (once read, a closing response's socket is gone)."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    async def note(self, response: httpx.Response) -> None:
        stream = response.extensions["network_stream"]
        self.seen.append(int(stream.get_extra_info("client_addr")[1]))


@pytest.mark.db
@pytest.mark.redis
@pytest.mark.slow
async def test_a_real_api_closes_the_connection_after_its_limit_and_while_draining(
    settings: Settings, tmp_path: Path
) -> None:
    run = msgspec.structs.replace(
        settings,
        api_keepalive_requests=3,
        shutdown_grace_seconds=3.0,
        metrics_dir=str(tmp_path / "metrics"),
    )
    api = HubProcess("api", run, tmp_path / "api.log").start()
    try:
        await asyncio.to_thread(api.wait_ready)
        ports = Ports()
        async with httpx.AsyncClient(
            base_url=api.url, timeout=5, event_hooks={"response": [ports.note]}
        ) as http:
            answers = [await http.get("/healthz") for _ in range(7)]
            assert [r.status_code for r in answers] == [200] * 7
            closing = [r.headers.get("connection") == "close" for r in answers]
            # The server closed after the 3rd and the 6th: the client had to reconnect.
            assert closing == [False, False, True, False, False, True, False]
            seen = ports.seen
            assert len({seen[0], seen[1], seen[2]}) == 1
            assert len({seen[3], seen[4], seen[5]}) == 1
            assert len({seen[2], seen[3], seen[6]}) == 3

            assert api.proc is not None
            api.proc.send_signal(signal.SIGTERM)  # drains: still serving for the grace period
            await asyncio.sleep(0.5)
            draining = [await http.get("/healthz") for _ in range(2)]
            assert [r.headers.get("connection") for r in draining] == ["close", "close"]
            # The first went over the 7th's connection and closed it: the second reconnected.
            assert seen[7] == seen[6]
            assert seen[8] != seen[7]
    finally:
        await asyncio.to_thread(api.stop)
