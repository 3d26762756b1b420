"""The page gate (hub/feeds/admission.py): turns, the wait queue, the CPU budget, metering;
and its answers on the REST and SOAP feeds, with ingest never refused."""

import asyncio
import time
from typing import Any

import httpx
import msgspec
import pytest
from lxml import etree
from prometheus_client import CollectorRegistry

from hub.app import create_app
from hub.feeds.admission import PageBudget, PageGate
from hub.feeds.errors import FeedsBusyError
from hub.feeds.metrics import FeedMetrics
from hub.kit.soap import SOAP_ENV
from hub.settings import Settings
from tests.hub.feeds.builders import NORTH_CAMERA, bearer, event, upload_to
from tests.support import EdgeNode, ThreadedServer

TNS = "urn:hub:feeds:v1"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def gate(clock: FakeClock, **budget: Any) -> tuple[PageGate, FeedMetrics]:
    metrics = FeedMetrics(CollectorRegistry())
    return PageGate(PageBudget(**budget), metrics=metrics, clock=clock), metrics


def count(metrics: FeedMetrics, outcome: str, channel: str = "rest") -> float:
    value: float = metrics.pages.labels(channel, outcome)._value.get()
    return value


async def test_pages_within_the_budget_start_at_once() -> None:
    clock = FakeClock()
    pages, metrics = gate(clock, concurrency=2, queue=0)
    async with pages.admitted("rest"), pages.admitted("rest"):
        pass
    assert count(metrics, "admitted") == 2
    assert count(metrics, "refused") == 0


async def test_a_full_house_with_no_queue_refuses_with_retry_after() -> None:
    pages, metrics = gate(FakeClock(), concurrency=1, queue=0)
    async with pages.admitted("rest"):
        with pytest.raises(FeedsBusyError) as refused:
            async with pages.admitted("soap"):
                pass
    assert refused.value.status == 503
    assert refused.value.code == "feeds_busy"
    assert refused.value.retry_after == 1
    assert count(metrics, "refused", "soap") == 1


async def test_a_waiter_gets_the_turn_given_back_in_time() -> None:
    pages, metrics = gate(FakeClock(), concurrency=1, queue=4, max_wait_seconds=5.0)
    order: list[str] = []

    async def second() -> None:
        async with pages.admitted("rest"):
            order.append("second")

    async with pages.admitted("rest"):
        waiter = asyncio.create_task(second())
        await asyncio.sleep(0.01)
        order.append("first done")
    await asyncio.wait_for(waiter, 2)
    assert order == ["first done", "second"]
    assert count(metrics, "admitted") == 2


async def test_a_long_poll_holds_no_place_while_it_waits() -> None:
    pages, metrics = gate(FakeClock(), concurrency=1, queue=4, max_wait_seconds=5.0)
    order: list[str] = []
    resumed = asyncio.Event()

    async def long_poll() -> None:
        async with pages.admitted("rest") as turn:
            async with turn.stepped_out():
                order.append("poll waits")
                await resumed.wait()
            order.append("poll works again")

    async def other() -> None:
        async with pages.admitted("rest"):
            order.append("other page")
            resumed.set()
            await asyncio.sleep(0.01)  # the poller queues for the place meanwhile

    poll = asyncio.create_task(long_poll())
    await asyncio.sleep(0.01)
    await asyncio.wait_for(asyncio.gather(other(), poll), 2)
    assert order == ["poll waits", "other page", "poll works again"]
    async with pages.admitted("rest"):  # every place was given back
        pass
    assert count(metrics, "admitted") == 4


async def test_a_page_in_cpu_debt_waits_for_the_refill_or_is_refused() -> None:
    clock = FakeClock()
    pages, _ = gate(clock, cpu_ms_per_second=100, max_wait_seconds=0.5)
    pages.charge(2_000_000_000)  # two seconds of CPU: 20 s of refill at 100 ms/s
    with pytest.raises(FeedsBusyError) as refused:
        async with pages.admitted("rest"):
            pass
    assert refused.value.retry_after == 20
    clock.now += 20.1  # refilled
    async with pages.admitted("rest"):
        pass


async def test_ingest_lowers_the_budget_while_it_runs() -> None:
    clock = FakeClock()
    pages, _ = gate(clock, cpu_ms_per_second=1000, cpu_ms_beside_ingest=100)
    pages.charge(1_200_000_000)  # the 200 ms saved up, then one second of CPU in debt
    pages.note_ingest()
    with pytest.raises(FeedsBusyError) as beside:
        async with pages.admitted("rest"):
            pass
    assert beside.value.retry_after == 10  # refilled at 100 ms/s
    clock.now += 1.5  # no batch for a second and a half: refilled at 1000 ms/s
    async with pages.admitted("rest"):
        pass


async def test_metering_charges_the_pages_own_steps_only() -> None:
    pages, metrics = gate(FakeClock(), cpu_ms_per_second=1000)

    def burn(seconds: float) -> None:
        until = time.thread_time() + seconds
        while time.thread_time() < until:
            pass

    async def page() -> str:
        burn(0.02)
        await asyncio.sleep(0.05)  # other work runs meanwhile: not the page's
        burn(0.02)
        return "done"

    async def other() -> None:
        await asyncio.sleep(0.01)
        burn(0.05)

    elsewhere = asyncio.create_task(other())
    assert await pages.metered(page()) == "done"
    await elsewhere
    charged = metrics.page_cpu._value.get()
    assert 0.035 <= charged < 0.07


async def test_metering_passes_errors_and_cancellation_through() -> None:
    pages, _ = gate(FakeClock())

    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        await pages.metered(fails())

    async def waits() -> None:
        await pages.metered(asyncio.sleep(10))

    task = asyncio.create_task(waits())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def starved(settings: Settings) -> Settings:
    """Settings whose page budget one page exhausts for seconds (1 ms of CPU per second)."""
    return msgspec.structs.replace(
        settings, feeds_page_cpu_ms_per_second=1, feeds_page_cpu_ms_beside_ingest=1
    )


def get_events(limit: int = 10) -> bytes:
    body = f'<GetEvents xmlns="{TNS}"><limit>{limit}</limit></GetEvents>'
    return (
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body>{body}</soap:Body></soap:Envelope>'
    ).encode()


@pytest.mark.db
@pytest.mark.redis
@pytest.mark.commits
async def test_over_budget_rest_and_soap_say_busy_and_ingest_goes_on(
    feed_settings: Settings, agencies: None, edge_node: EdgeNode, tokens: dict[str, str]
) -> None:
    with ThreadedServer(create_app(starved(feed_settings))) as server:
        await upload_to(server.url, edge_node, *[event(NORTH_CAMERA) for _ in range(5)])
        headers = bearer(tokens["police"])
        soap_headers = {**headers, "Content-Type": "text/xml; charset=utf-8"}
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            first = await http.get("/v1/feeds/events", headers=headers)
            busy = await http.get("/v1/feeds/events", headers=headers)
            soap = await http.post("/soap/feed", content=get_events(), headers=soap_headers)
        # Ingest does not pass through the gate: accepted while readers are refused.
        await upload_to(server.url, edge_node, event(NORTH_CAMERA))

    assert first.status_code == 200, first.text
    assert len(first.json()["items"]) == 5
    assert busy.status_code == 503, busy.text
    assert busy.headers["content-type"].startswith("application/problem+json")
    assert busy.json()["type"].endswith("/feeds_busy")
    assert int(busy.headers["retry-after"]) >= 1
    assert soap.status_code == 503, soap.text
    assert int(soap.headers["retry-after"]) >= 1
    fault = etree.fromstring(soap.content).find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault is not None
    assert fault.findtext("faultcode") == "soap:Server"
    assert "budget" in (fault.findtext("faultstring") or "")
