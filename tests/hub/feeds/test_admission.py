"""The page gate (hub/feeds/admission.py): turns, the wait queue, the CPU budget, metering;
and its answers on the REST and SOAP feeds, with ingest never refused."""

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree
from prometheus_client import CollectorRegistry

from hub.app import create_app
from hub.feeds.admission import (
    FEED_CHANNEL,
    MAX_RETRY_AFTER_SECONDS,
    HostIdle,
    HostMark,
    MeteredFeedRequests,
    PageBudget,
    PageGate,
    read_proc_stat,
)
from hub.feeds.errors import FeedsBusyError
from hub.feeds.metrics import FeedMetrics
from hub.kit.soap import SOAP_ENV
from hub.runtime import build_services
from hub.settings import Settings
from tests.hub.feeds.builders import NORTH_CAMERA, bearer, event, upload_to
from tests.support import EdgeNode, ThreadedServer

TNS = "urn:hub:feeds:v1"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeCpu:
    """The process's CPU time in ns, moved by the test."""

    def __init__(self) -> None:
        self.ns = 0

    def __call__(self) -> int:
        return self.ns


def gate(
    clock: FakeClock, cpu: FakeCpu | None = None, **budget: Any
) -> tuple[PageGate, FeedMetrics]:
    metrics = FeedMetrics(CollectorRegistry())
    pages = PageGate(PageBudget(**budget), metrics=metrics, clock=clock, cpu_clock=cpu or FakeCpu())
    return pages, metrics


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
    # Asked to look again within MAX_RETRY_AFTER_SECONDS, and refused again while in debt.
    assert refused.value.retry_after == MAX_RETRY_AFTER_SECONDS == 10
    clock.now += 10.1
    with pytest.raises(FeedsBusyError) as again:
        async with pages.admitted("rest"):
            pass
    assert again.value.retry_after == 10
    clock.now += 10.0  # refilled
    async with pages.admitted("rest"):
        pass


async def watched_gate() -> tuple[FakeClock, FakeCpu, PageGate]:
    """A gate of 1000 ms/s (100 beside ingest, pressing at 20 %) that has looked once: its
    load window starts now."""
    clock, cpu = FakeClock(), FakeCpu()
    pages, _ = gate(
        clock, cpu, cpu_ms_per_second=1000, cpu_ms_beside_ingest=100, ingest_busy_percent=20
    )
    async with pages.admitted("rest"):
        pass
    return clock, cpu, pages


async def test_ingest_lowers_the_budget_while_it_keeps_the_process_busy() -> None:
    clock, cpu, pages = await watched_gate()
    clock.now += 0.5
    cpu.ns += 150_000_000  # 30 % of a core in half a second, none of it on the feeds
    pages.note_ingest()
    async with pages.admitted("rest"):  # the bucket keeps 50 ms (its floor) at 100 ms/s
        cpu.ns += 1_020_000_000
        pages.charge(1_020_000_000)  # then one second in debt
    with pytest.raises(FeedsBusyError) as beside:
        async with pages.admitted("rest"):
            pass
    assert beside.value.retry_after == 10  # refilled at 100 ms/s
    clock.now += 1.5  # no batch for a second and a half: refilled at 1000 ms/s
    async with pages.admitted("rest"):
        pass


async def test_a_lone_ingest_batch_in_an_idle_process_leaves_readers_the_full_budget() -> None:
    clock, cpu, pages = await watched_gate()
    clock.now += 1.0
    cpu.ns += 2_150_000_000  # in one second: 2.1 s on feed requests, 50 ms (5 %) on the rest
    pages.charge(2_100_000_000)  # the 200 ms saved up and the second's refill, 0.9 s in debt
    pages.note_ingest()
    with pytest.raises(FeedsBusyError) as busy:
        async with pages.admitted("rest"):
            pass
    assert busy.value.retry_after == 1  # refilled at 1000 ms/s (at 100 ms/s it would be 18)


async def test_ingest_pressing_another_process_of_the_host_lowers_this_ones_budget(
    tmp_path: Path,
) -> None:
    # Two API processes of one hub on one host: the ingesting one marks the host's file, the
    # one with only readers reads it (each with its own clocks; the mark is wall time).
    wall = FakeClock()
    mark = tmp_path / "hub-ingest-presses"
    budget = {"cpu_ms_per_second": 1000, "cpu_ms_beside_ingest": 100, "ingest_busy_percent": 20}
    clock, cpu = FakeClock(), FakeCpu()
    ingesting = PageGate(
        PageBudget(**budget), metrics=FeedMetrics(CollectorRegistry()), clock=clock,
        cpu_clock=cpu, host=HostMark(mark, clock=wall),
    )  # fmt: skip
    async with ingesting.admitted("rest"):  # its load window starts now
        pass
    reading = PageGate(
        PageBudget(**budget), metrics=FeedMetrics(CollectorRegistry()), clock=FakeClock(),
        cpu_clock=FakeCpu(), host=HostMark(mark, clock=wall),
    )  # fmt: skip

    async def refill_rate_of(pages: PageGate) -> int:
        async with pages.admitted("rest"):
            pages.charge(1_050_000_000)
        with pytest.raises(FeedsBusyError) as busy:
            async with pages.admitted("rest"):
                pass
        return busy.value.retry_after

    clock.now += 0.5
    cpu.ns += 100_000_000  # 20 % of a core on ingest, none on the feeds
    ingesting.note_ingest()
    assert mark.exists()
    # The readers' process saved up only the lower budget's 50 ms: 1 s in debt, refilled at
    # 100 ms/s (10 s), not 1000 ms/s.
    assert await refill_rate_of(reading) == 10
    wall.now += 1.0  # no mark for a second: the readers' process has its full budget back
    reading._balance_ns = 1
    assert await refill_rate_of(reading) == 2  # 1.05 s in debt at 1000 ms/s (11 at 100)


async def test_a_host_mark_that_cannot_be_written_changes_nothing(tmp_path: Path) -> None:
    wall = FakeClock()
    unwritable = HostMark(tmp_path / "missing-folder" / "mark", clock=wall)
    unwritable.touch()  # no error: each process then has only its own measure
    assert not unwritable.recent(1.0)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    planted = HostMark(link, clock=wall)
    planted.touch()  # never followed through a link
    assert not (tmp_path / "elsewhere").exists()


class FakeStat:
    """The host's (idle, total) CPU ticks, moved by the test; None: no counters."""

    def __init__(self) -> None:
        self.ticks: tuple[int, int] | None = (0, 0)

    def __call__(self) -> tuple[int, int] | None:
        return self.ticks

    def spend(self, *, idle: int, busy: int) -> None:
        assert self.ticks is not None
        self.ticks = (self.ticks[0] + idle, self.ticks[1] + idle + busy)


async def test_pages_get_a_trickle_while_ingest_presses_and_the_host_has_no_idle_cpu() -> None:
    clock, cpu, stat = FakeClock(), FakeCpu(), FakeStat()
    metrics = FeedMetrics(CollectorRegistry())
    pages = PageGate(
        PageBudget(cpu_ms_per_second=1000, cpu_ms_beside_ingest=100, ingest_busy_percent=20,
                   host_idle_percent=20),
        metrics=metrics, clock=clock, cpu_clock=cpu, idle=HostIdle(stat, clock=clock),
    )  # fmt: skip

    def budget_shown() -> float:
        value: float = metrics.page_budget._value.get()
        return value

    async with pages.admitted("rest"):  # the load and idle windows start now
        pass

    async def retry_after_a_debt_of(ns: int) -> int:
        pages._balance_ns = 1
        async with pages.admitted("rest"):
            pages.charge(ns)
        with pytest.raises(FeedsBusyError) as busy:
            async with pages.admitted("rest"):
                pass
        return busy.value.retry_after

    clock.now += 0.5
    cpu.ns += 150_000_000  # ingest keeps this process 30 % busy
    stat.spend(idle=10, busy=90)  # and the host 10 % idle: pages get 1 ms/s
    pages.note_ingest()
    assert await retry_after_a_debt_of(5_000_000) == 5  # 0.5 ms saved, 4.5 ms of debt
    assert budget_shown() == 1
    clock.now += 0.5
    cpu.ns += 150_000_000
    stat.spend(idle=40, busy=60)  # 40 % idle: the beside-ingest budget, 100 ms/s
    pages.note_ingest()
    assert await retry_after_a_debt_of(250_000_000) == 2  # 50 ms saved, 200 ms of debt
    assert budget_shown() == 100


async def test_a_bucket_filled_before_saturation_keeps_one_page_of_it() -> None:
    clock, cpu, stat = FakeClock(), FakeCpu(), FakeStat()
    pages = PageGate(
        PageBudget(cpu_ms_per_second=1000, cpu_ms_beside_ingest=100, ingest_busy_percent=20),
        metrics=FeedMetrics(CollectorRegistry()), clock=clock, cpu_clock=cpu,
        idle=HostIdle(stat, clock=clock),
    )  # fmt: skip
    async with pages.admitted("rest"):  # the windows start; the bucket holds 200 ms
        pass
    clock.now += 0.5
    cpu.ns += 150_000_000
    stat.spend(idle=5, busy=95)
    pages.note_ingest()
    async with pages.admitted("rest"):  # saturated: what was saved is cut to 10 ms
        pages.charge(12_000_000)
    with pytest.raises(FeedsBusyError) as busy:
        async with pages.admitted("rest"):
            pass
    assert busy.value.retry_after == 2  # 2 ms of debt at 1 ms/s, not a burst of pages


async def test_without_cpu_counters_or_with_the_check_off_the_host_is_never_saturated() -> None:
    clock, cpu, stat = FakeClock(), FakeCpu(), FakeStat()
    stat.ticks = None
    unknown = HostIdle(stat, clock=clock)
    assert unknown.share() is None
    clock.now += 1.0
    assert unknown.share() is None
    stat.ticks = (0, 0)
    off = PageGate(
        PageBudget(cpu_ms_beside_ingest=100, host_idle_percent=0),
        metrics=FeedMetrics(CollectorRegistry()), clock=clock, cpu_clock=cpu,
        idle=HostIdle(stat, clock=clock),
    )  # fmt: skip
    stat.spend(idle=0, busy=100)
    assert not off._host_saturated()


async def test_host_idle_is_read_per_window_and_averaged_over_a_gap() -> None:
    clock, stat = FakeClock(), FakeStat()
    idle = HostIdle(stat, clock=clock)  # the first window starts here
    assert idle.share() is None  # not a whole window yet
    clock.now += 0.5
    stat.spend(idle=25, busy=75)
    assert idle.share() == 0.25
    clock.now += 0.2
    stat.spend(idle=0, busy=100)
    assert idle.share() == 0.25  # inside the window: the last one's figure
    clock.now += 10  # no look for ten seconds (readers told to come back later)
    stat.spend(idle=100, busy=900)
    assert idle.share() == 100 / 1100  # those seconds and the 0.2 before, averaged


def test_proc_stat_is_read_as_idle_and_total_ticks(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 5 50 800 20 1 4 0 0 0\ncpu0 50 2 25 400 10 0 2 0 0 0\n")
    assert read_proc_stat(stat) == (820, 980)
    stat.write_text("cpu  garbage\n")
    assert read_proc_stat(stat) is None
    assert read_proc_stat(tmp_path / "missing") is None


async def nothing() -> dict[str, Any]:
    return {}


async def ignore(message: Any) -> None:
    pass


async def test_feed_routers_meter_whole_http_requests_not_websockets() -> None:
    pages, metrics = gate(FakeClock(), cpu_ms_per_second=1000)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        until = time.thread_time() + 0.03
        while time.thread_time() < until:
            pass

    metered = MeteredFeedRequests(app, gate=lambda: pages)
    await metered({"type": "websocket"}, nothing, ignore)
    assert metrics.page_cpu._value.get() == 0
    await metered({"type": "http"}, nothing, ignore)
    assert 0.025 <= metrics.page_cpu._value.get() < 0.06


class Handler:
    """What the middleware reads of a Litestar route handler: its `opt`."""

    def __init__(self, **opt: Any) -> None:
        self.opt = opt


async def test_early_refusals_count_under_the_channel_their_route_names() -> None:
    pages, metrics = gate(FakeClock(), cpu_ms_per_second=100, max_wait_seconds=0.5)
    pages.charge(2_000_000_000)  # two seconds of debt at 100 ms/s: no wait covers it
    ran: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        ran.append(scope["route_handler"].opt.get(FEED_CHANNEL, "none"))

    metered = MeteredFeedRequests(app, gate=lambda: pages)
    for channel in ("media", "rest", "media"):
        scope = {"type": "http", "route_handler": Handler(**{FEED_CHANNEL: channel})}
        with pytest.raises(FeedsBusyError):
            await metered(scope, nothing, ignore)
    # A route that names no channel (SOAP's one endpoint) is only metered: its handler decides.
    await metered({"type": "http", "route_handler": Handler()}, nothing, ignore)
    assert ran == ["none"]
    assert (count(metrics, "refused", "media"), count(metrics, "refused", "rest")) == (2, 1)


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
    services = build_services(feed_settings)
    with ThreadedServer(create_app(feed_settings, services=services)) as server:
        await upload_to(server.url, edge_node, *[event(NORTH_CAMERA) for _ in range(5)])
        headers = bearer(tokens["police"])
        soap_headers = {**headers, "Content-Type": "text/xml; charset=utf-8"}
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            first = await http.get("/v1/feeds/events", headers=headers)
            # Ten seconds of feed work in debt: the bucket refills at 700 ms/s (not ingesting).
            services.feeds.gate.charge(10 * 1_000_000_000)
            busy = await http.get("/v1/feeds/events", headers=headers)
            # Refused before authentication: a hopeless request costs almost nothing.
            anonymous = await http.get("/v1/feeds/events")
            soap = await http.post("/soap/feed", content=get_events(), headers=soap_headers)
        # Ingest does not pass through the gate: accepted while readers are refused.
        await upload_to(server.url, edge_node, event(NORTH_CAMERA))

    assert first.status_code == 200, first.text
    assert len(first.json()["items"]) == 5
    assert busy.status_code == 503, busy.text
    assert busy.headers["content-type"].startswith("application/problem+json")
    assert busy.json()["type"].endswith("/feeds_busy")
    assert int(busy.headers["retry-after"]) >= 1
    assert anonymous.status_code == 503, anonymous.text
    assert anonymous.json()["type"].endswith("/feeds_busy")
    assert soap.status_code == 503, soap.text
    assert int(soap.headers["retry-after"]) >= 1
    fault = etree.fromstring(soap.content).find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault is not None
    assert fault.findtext("faultcode") == "soap:Server"
    assert "budget" in (fault.findtext("faultstring") or "")


async def test_database_time_draws_from_the_bucket_but_is_not_this_process_load() -> None:
    clock, cpu, pages = await watched_gate()
    clock.now += 0.5
    cpu.ns += 150_000_000  # 30 % of a core besides the feeds: ingest presses
    # 200 ms saved up at start, 50 ms refilled in the half second: 0.99 s in debt.
    pages.charge_database(1_240_000_000)
    pages.note_ingest()
    with pytest.raises(FeedsBusyError) as beside:
        async with pages.admitted("rest"):
            pass
    assert beside.value.retry_after == 10  # at 100 ms/s: the load stayed ingest's
