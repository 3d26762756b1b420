"""The JetStream adapter against real NATS servers with JetStream.

Quick cases use the machine's server on 127.0.0.1:4222 (or one started here when none
answers); restart cases start their own `nats-server` on a free loopback port with a file
store, so it can be killed and started again. Each test makes its own stream(s), named
`hubtest_<random>`, and deletes only those.
"""

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import nats
import nats.errors
import pytest
from litestar.testing import AsyncTestClient
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import StreamConfig
from redis.asyncio import Redis

from adapters.base import ConfigError, Message, PermanentError, RetryableError
from adapters.egress import EgressGuard, EgressRefusedError
from adapters.jetstream import JetStreamAdapter, ServerEgressGuard, create, parse_config
from adapters.registry import installed_kinds
from hub.delivery.agencies import add_agency, check_egress
from hub.delivery.schemas import AgencyCreate, Subscription
from hub.kit.errors import ValidationError
from hub.runtime import Services
from hub.settings import Settings
from tests.hub.delivery.harness import all_settled, ingest, quick, running_worker, wait_until
from tests.hub.ingest.builders import event
from tests.support import EdgeNode, free_port

LOOPBACK = EgressGuard(allowed_networks=["127.0.0.1/32"])
SYSTEM_SERVER = ("127.0.0.1", 4222)
RECORD: dict[str, Any] = {"event_id": "0b9f6c1e-4a53-4d27-9c1b-2f1e8a7d6c50", "label": "car"}


# -- servers and streams ------------------------------------------------------------------


def _answers(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def _server_binary() -> str:
    found = shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin:/usr/bin")
    if found is None:
        script = Path(__file__).parents[2] / "scripts" / "apt-ensure.sh"
        subprocess.run([script, "jetstream tests", "nats-server"], check=False, timeout=300)  # noqa: S603
        found = shutil.which("nats-server", path="/usr/sbin:/usr/bin")
    if found is None:
        pytest.skip("nats-server is not installed (Debian package nats-server)")
    return found


class NatsServer:
    """A `nats-server -js` of our own on a free loopback port, with a file store, that can be
    killed (SIGKILL) and started again on the same port and store."""

    def __init__(self, store: Path, *, user: str | None = None, password: str | None = None):
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.args = [_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js"]
        self.args += ["-sd", str(store)]
        if user and password:
            self.args += ["--user", user, "--pass", password]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # The binary found on PATH (or just installed) and our own arguments.
        self.proc = subprocess.Popen(  # noqa: S603
            self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while not _answers("127.0.0.1", self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("nats-server did not start")
            time.sleep(0.05)

    def kill(self, how: signal.Signals = signal.SIGKILL) -> None:
        """Stop it: SIGKILL crashes it, SIGTERM is a clean shutdown (state flushed)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(how)
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture(scope="module")
def system_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The machine's JetStream server, or one of ours when none answers on 4222."""
    if _answers(*SYSTEM_SERVER):
        yield "nats://{}:{}".format(*SYSTEM_SERVER)
        return
    server = NatsServer(tmp_path_factory.mktemp("nats"))
    server.start()
    yield server.url
    server.kill()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A server of this test's own (killable)."""
    server = NatsServer(tmp_path / "store")
    server.start()
    yield server
    server.kill()


async def _client(url: str, **options: Any) -> Client:
    """A plain client (reconnecting) for making streams and consuming."""
    return await nats.connect(
        url, max_reconnect_attempts=-1, reconnect_time_wait=0.2, connect_timeout=2, **options
    )


@dataclass
class Stream:
    """A stream made for one test: its name and the agency subject it captures."""

    url: str
    name: str = field(default_factory=lambda: f"hubtest_{uuid.uuid4().hex[:12]}")

    @property
    def subject(self) -> str:
        return f"{self.name}.events"

    def config(self, **overrides: Any) -> dict[str, Any]:
        """The agency configuration publishing into this stream."""
        return {
            "servers": [self.url],
            "stream": self.name,
            "subject": self.subject,
            "timeout_seconds": 2,
        } | overrides


@contextlib.asynccontextmanager
async def made_stream(url: str, **limits: Any) -> AsyncIterator[Stream]:
    """A file-stored stream with a two-minute duplicate window, deleted afterwards."""
    stream = Stream(url)
    client = await _client(url)
    try:
        js = client.jetstream()
        await js.add_stream(
            StreamConfig(
                name=stream.name, subjects=[f"{stream.name}.>"], duplicate_window=120, **limits
            )
        )
        yield stream
        with contextlib.suppress(nats.errors.Error):
            await js.delete_stream(stream.name)
    finally:
        await client.close()


def message(record: dict[str, Any] | None = None, **fields: Any) -> Message:
    values: dict[str, Any] = {
        "delivery_id": uuid.uuid4(),
        "agency": "police-north",
        "attempt": 1,
        "decision_id": "dec-1",
        "record": RECORD if record is None else record,
    }
    return Message(**(values | fields))


@dataclass
class Received:
    """What a consumer took and acknowledged: (Nats-Msg-Id, stream sequence) per message."""

    items: list[tuple[str, int]] = field(default_factory=list)
    redelivered: int = 0


async def consume(url: str, stream: Stream, received: Received, stop: asyncio.Event) -> None:
    """A durable pull consumer that acknowledges each message, riding out server restarts."""
    client = await _client(url)
    try:
        js = client.jetstream()
        subscription = await js.pull_subscribe(stream.subject, "reader", stream=stream.name)
        while not stop.is_set():
            try:
                batch = await subscription.fetch(50, timeout=0.5)
            except (nats.errors.Error, TimeoutError):
                continue  # nothing new, or the server is restarting
            for msg in batch:
                _take(msg, received)
                with contextlib.suppress(nats.errors.Error):
                    await msg.ack_sync(timeout=2)
    finally:
        await client.close()


def _take(msg: Msg, received: Received) -> None:
    if msg.metadata.num_delivered > 1:
        received.redelivered += 1  # the consumer's own redelivery (an ack lost in a restart)
        return
    msg_id = (msg.headers or {}).get("Nats-Msg-Id", "")
    received.items.append((msg_id, msg.metadata.sequence.stream))


async def stream_size(url: str, name: str) -> int:
    client = await _client(url)
    try:
        info = await client.jetstream().stream_info(name)
        return int(info.state.messages)
    finally:
        await client.close()


@pytest.fixture
async def adapter() -> AsyncIterator[JetStreamAdapter]:
    built = JetStreamAdapter(egress=LOOPBACK)
    yield built
    await built.aclose()


# -- configuration and egress -------------------------------------------------------------


def test_the_kind_is_registered_by_entry_point() -> None:
    assert "jetstream" in installed_kinds()
    assert create(egress=LOOPBACK).kind == "jetstream"


GOOD = {"servers": ["nats://nats.example:4222"], "stream": "EVENTS", "subject": "hub.events.a"}


@pytest.mark.parametrize(
    ("change", "field_named"),
    [
        ({"servers": []}, "servers"),
        ({"servers": ["http://nats.example"]}, "servers[0]"),
        ({"servers": ["nats://u:p@nats.example"]}, "servers[0]"),
        ({"servers": ["nats://nats.example/path"]}, "servers[0]"),
        ({"stream": "a.b"}, "stream"),
        ({"subject": "hub.events.>"}, "subject"),
        ({"subject": "hub..events"}, "subject"),
        ({"user": "hub"}, "user"),
        ({"token": "t", "user": "u", "password": "p"}, "token"),
        ({"ca_file": "/etc/ca.pem"}, "ca_file"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_configurations_are_refused_naming_the_field(
    change: dict[str, Any], field_named: str
) -> None:
    with pytest.raises(ConfigError, match=field_named.replace("[", r"\[")) as caught:
        parse_config(GOOD | change)
    assert "p@" not in str(caught.value)  # a secret in a URL is never echoed


def test_a_good_configuration_parses_with_defaults() -> None:
    config = parse_config(GOOD | {"servers": ["tls://nats.example"], "ca_file": "/etc/ca.pem"})
    assert config.timeout_seconds == 5.0
    assert config.servers == ("tls://nats.example",)


async def test_registration_checks_every_server_against_the_egress_policy() -> None:
    adapter = JetStreamAdapter(egress=LOOPBACK)
    allowed = adapter.parse_config(GOOD | {"servers": ["nats://127.0.0.1:4222"]})
    await check_egress(adapter, allowed)  # loopback is allow-listed here
    inside = adapter.parse_config(
        GOOD | {"servers": ["nats://127.0.0.1:4222", "nats://127.0.0.2:4222"]}
    )
    with pytest.raises(ValidationError) as caught:
        await check_egress(adapter, inside)
    assert caught.value.code == "agency_endpoint_refused"

    production = ServerEgressGuard(allowed_networks=["127.0.0.1/32"], require_https=True)
    with pytest.raises(EgressRefusedError, match="tls://"):
        await production.check_endpoint("nats://127.0.0.1:4222")
    await production.check_endpoint("tls://127.0.0.1:4222")
    await adapter.aclose()


async def test_a_server_outside_the_policy_is_never_contacted(adapter: JetStreamAdapter) -> None:
    # 127.0.0.2 answers nothing here either; the refusal must come from the policy.
    config = adapter.parse_config(GOOD | {"servers": ["nats://127.0.0.2:4222"]})
    with pytest.raises(RetryableError, match="not permitted"):
        await adapter.deliver(message(), config)


async def test_an_unreachable_server_is_retryable(adapter: JetStreamAdapter) -> None:
    config = adapter.parse_config(GOOD | {"servers": [f"nats://127.0.0.1:{free_port()}"]})
    with pytest.raises(RetryableError, match="cannot reach the NATS server") as caught:
        await adapter.deliver(message(), config)
    assert "127.0.0.1" not in str(caught.value)


# -- publishing -----------------------------------------------------------------------------


async def test_a_publish_is_acknowledged_and_a_resend_is_stored_once(
    adapter: JetStreamAdapter, system_url: str
) -> None:
    async with made_stream(system_url) as stream:
        config = adapter.parse_config(stream.config())
        first = message()
        receipt = await adapter.deliver(first, config)
        assert receipt.reference == f"{stream.name}:1"
        # The ack was lost, say: the worker sends the same delivery again (attempt 2).
        again = await adapter.deliver(msgspec.structs.replace(first, attempt=2), config)
        assert again.reference == f"{stream.name}:1"
        assert "duplicate" in again.detail
        await adapter.deliver(message(), config)
        assert await stream_size(system_url, stream.name) == 2

        client = await _client(system_url)
        try:
            sub = await client.jetstream().pull_subscribe(stream.subject, "r", stream=stream.name)
            (msg, _) = await sub.fetch(2, timeout=2)
            await msg.ack()
        finally:
            await client.close()
    assert msg.headers is not None
    assert msg.headers["Nats-Msg-Id"] == str(first.delivery_id)
    body = msgspec.json.decode(msg.data)
    assert body["type"] == "detection.released"
    assert body["data"]["record"] == RECORD
    assert body["data"]["delivery_id"] == str(first.delivery_id)


async def test_refusals_by_the_stream_are_permanent(
    adapter: JetStreamAdapter, system_url: str
) -> None:
    async with made_stream(system_url, max_msg_size=200) as small:
        config = adapter.parse_config(small.config())
        with pytest.raises(PermanentError, match="jetstream refused") as caught:
            await adapter.deliver(message({"blob": "x" * 500}), config)
        assert caught.value.status_code == 400
        async with made_stream(system_url) as other:
            # The subject belongs to `small`; an agency configured for `other` is refused
            # instead of writing into a stream it did not name.
            wrong = adapter.parse_config(small.config(stream=other.name))
            with pytest.raises(PermanentError, match="jetstream refused"):
                await adapter.deliver(message(), wrong)
        assert await stream_size(system_url, small.name) == 0


async def test_credentials_reach_the_server(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "store", user="hub", password="s3cret-pass")
    server.start()
    adapter = JetStreamAdapter(egress=LOOPBACK)
    name = f"hubtest_{uuid.uuid4().hex[:12]}"
    try:
        admin = await _client(server.url, user="hub", password="s3cret-pass")
        await admin.jetstream().add_stream(StreamConfig(name=name, subjects=[f"{name}.>"]))
        await admin.close()
        base = {"servers": [server.url], "stream": name, "subject": f"{name}.events"}
        with pytest.raises(RetryableError) as refused:
            await adapter.deliver(message(), adapter.parse_config(base))
        assert "s3cret" not in str(refused.value)
        config = adapter.parse_config(base | {"user": "hub", "password": "s3cret-pass"})
        receipt = await adapter.deliver(message(), config)
        assert receipt.reference == f"{name}:1"
    finally:
        await adapter.aclose()
        server.kill()


async def test_the_duplicate_window_survives_a_server_restart(own_server: NatsServer) -> None:
    adapter = JetStreamAdapter(egress=LOOPBACK)
    try:
        async with made_stream(own_server.url) as stream:
            config = adapter.parse_config(stream.config())
            sent = message()
            assert (await adapter.deliver(sent, config)).reference == f"{stream.name}:1"
            own_server.kill()
            with pytest.raises(RetryableError):
                await adapter.deliver(message(), config)
            own_server.start()
            # The kept connection died with the server; the next delivery opens a new one.
            await _until_published(adapter, msgspec.structs.replace(sent, attempt=2), config)
            assert await stream_size(own_server.url, stream.name) == 1
    finally:
        await adapter.aclose()


async def _until_published(adapter: JetStreamAdapter, sent: Message, config: Any) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            receipt = await adapter.deliver(sent, config)
        except RetryableError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)  # JetStream recovers its streams after it listens
            continue
        assert "duplicate" in receipt.detail
        return


# -- end to end through the hub -------------------------------------------------------------


@pytest.fixture
async def _drop_job_keys(settings: Settings) -> AsyncIterator[None]:
    """arq keeps job records outside our prefix; remove the ones this test made."""
    yield
    redis = Redis.from_url(settings.redis_url)
    try:
        keys = [k async for k in redis.scan_iter(match=f"arq:*:{settings.redis_prefix}*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


async def _register(
    services: Services, name: str, config: dict[str, Any], purpose: str, area: str, level: int
) -> None:
    create = AgencyCreate(
        name=name,
        kind="jetstream",
        config=config,
        subscription=Subscription(purpose=purpose),
        jurisdictions=[area],
        clearance=level,
    )
    await add_agency(services.db, services.delivery.adapters, create, actor="test")


async def _ledger(settings: Settings) -> dict[str, str]:
    """Each delivery id with its status."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch("SELECT id, status FROM delivery")
    finally:
        await conn.close()
    return {str(row["id"]): row["status"] for row in rows}


@pytest.mark.db
@pytest.mark.redis
@pytest.mark.commits
@pytest.mark.usefixtures("_drop_job_keys")
async def test_events_reach_an_acknowledging_consumer_and_a_refusal_is_dead_lettered(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    system_url: str,
) -> None:
    async with (
        made_stream(system_url) as stream,
        made_stream(system_url, max_msg_size=64) as tiny,
    ):
        # police-north sees camera 1; city-analytics camera 2, into a stream too small.
        await _register(services, "police-north", stream.config(), "investigation", "north", 3)
        await _register(services, "city-analytics", tiny.config(), "statistics", "central", 1)
        received, stop = Received(), asyncio.Event()
        reader = asyncio.create_task(consume(system_url, stream, received, stop))
        await ingest(client, edge_node, [event(camera_id="demo-cam-1") for _ in range(5)])
        await ingest(client, edge_node, [event(camera_id="demo-cam-2") for _ in range(2)])
        async with running_worker(quick(settings)):
            # Each agency is offered all 7 events; policy withholds the other area's.
            await wait_until(lambda: all_settled(settings, 14), what="deliveries settled")
        await wait_until(lambda: _count(received, 5), what="consumer took all five")
        stop.set()
        await reader
        ledger = await _ledger(settings)
    delivered = {d for d, status in ledger.items() if status == "delivered"}
    assert len(delivered) == 5
    assert sorted(ledger.values()).count("dead") == 2
    assert {msg_id for msg_id, _ in received.items} == delivered
    assert len(received.items) == 5


async def _count(received: Received, n: int) -> bool:
    return len(received.items) >= n


@pytest.mark.db
@pytest.mark.redis
@pytest.mark.commits
@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.usefixtures("_drop_job_keys")
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["restarted", "crashed"])
async def test_a_server_restarted_mid_stream_loses_nothing_and_stores_nothing_twice(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    own_server: NatsServer,
    how: signal.Signals,
) -> None:
    total = 60
    async with made_stream(own_server.url) as stream:
        await _register(services, "police-north", stream.config(), "investigation", "north", 3)
        received, stop = Received(), asyncio.Event()
        reader = asyncio.create_task(consume(own_server.url, stream, received, stop))
        patient = quick(settings, delivery_max_attempts=100, delivery_backoff_max_seconds=0.3)
        async with running_worker(patient):
            await ingest(client, edge_node, [event(camera_id="demo-cam-1") for _ in range(20)])
            await wait_until(lambda: _count(received, 5), what="the stream under way")
            own_server.kill(how)
            await ingest(client, edge_node, [event(camera_id="demo-cam-1") for _ in range(20)])
            await asyncio.sleep(1.0)
            own_server.start()
            await ingest(client, edge_node, [event(camera_id="demo-cam-1") for _ in range(20)])
            await wait_until(
                lambda: all_settled(settings, total), within=60, what="deliveries settled"
            )
        await wait_until(lambda: _distinct(received, total), within=30, what="consumer took all")
        stop.set()
        await reader
        stored = await stream_size(own_server.url, stream.name)
        ledger = await _ledger(settings)
    assert set(ledger.values()) == {"delivered"}
    assert stored == total  # nothing lost, nothing stored twice
    by_id: dict[str, set[int]] = {}
    for msg_id, seq in received.items:
        by_id.setdefault(msg_id, set()).add(seq)
    assert set(by_id) == set(ledger)  # the consumer got every delivery...
    assert all(len(seqs) == 1 for seqs in by_id.values())  # ...each stored at one sequence
    if how is signal.SIGTERM:
        # A clean restart keeps the consumer's acknowledgements: it sees each message once.
        assert len(received.items) == total
    # After a crash the server may have lost acknowledgements it had not synced, and the
    # consumer reads those messages again (same stream sequence, same Nats-Msg-Id): that is
    # JetStream's at-least-once consumption, which consumers dedupe by Nats-Msg-Id.


async def _distinct(received: Received, n: int) -> bool:
    return len({msg_id for msg_id, _ in received.items}) >= n
