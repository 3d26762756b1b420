"""The loop-latency guard: a real `hub api` keeps answering `/healthz` within 250 ms while it
is sent every hostile request of issue 15, one kind after another.

A thread polls `/healthz` every 20 ms for the whole run; one answer slower than 250 ms fails
the test, and so does a loop lag past 250 ms in the API's own `hub_event_loop_lag_seconds`.
Each hostile request must also be answered with a 4xx (or 503 when a pool is full), never
a 500, and never after the process fell over.
"""

import asyncio
import hashlib
import io
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from edge.signing import RequestSigner, generate_key
from hub.feeds.soap import TNS
from hub.kit.soap import SOAP_ENV
from hub.settings import Settings
from tests.hub.feeds.builders import agency_token, bearer, issue, register_agencies
from tests.hub.ingest.builders import event
from tests.hub.observability.processes import HubProcess
from tests.support import BASE_URL, EdgeNode, signed_headers

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.commits, pytest.mark.slow]

BUDGET_SECONDS = 0.25
MiB = 1 << 20


class HealthPoller:
    """Polls `/healthz` from a thread of its own; keeps every answer's latency."""

    def __init__(self, url: str, every: float = 0.02) -> None:
        self.url = url
        self.every = every
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as http:
            http.get("/healthz")  # the connection is open before timing starts
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    status = http.get("/healthz").status_code
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                self.latencies.append(time.perf_counter() - started)
                if status != 200:
                    self.failures.append(f"/healthz answered {status}")
                time.sleep(self.every)

    def __enter__(self) -> "HealthPoller":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(15)


@pytest.fixture
def tokens(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A tokens file with an officer, an operator and an agency."""
    path = tmp_path / "tokens.toml"
    return path, {
        "officer": issue(path, "olga", roles=["compliance_officer"]),
        "operator": issue(path, "otto", roles=["operator"]),
        "agency": agency_token(path, "police-north"),
    }


@pytest.fixture
async def api(
    settings: Settings, tokens: tuple[Path, dict[str, str]], tmp_path: Path
) -> Iterator[HubProcess]:
    """A real `hub api` on loopback (rate limits off: the pools must hold on their own)."""
    await register_agencies(settings.database_url)
    run = msgspec.structs.replace(
        settings,
        api_tokens_file=str(tokens[0]),
        public_base_url=BASE_URL,
        ratelimit_enabled=False,
        metrics_dir=str(tmp_path / "metrics"),
    )
    process = HubProcess("api", run, tmp_path / "api.log").start()
    try:
        await asyncio.to_thread(process.wait_ready)
        yield process
    finally:
        await asyncio.to_thread(process.stop)


def _soap_attributes() -> bytes:
    attributes = " ".join(f'a{i}="x"' for i in range(5_000))
    payload = f'<GetEvents xmlns="{TNS}" {attributes}><limit>5</limit></GetEvents>'
    return (
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body>{payload}</soap:Body></soap:Envelope>'
    ).encode()


def _huge_png() -> bytes:
    out = io.BytesIO()
    Image.new("L", (7000, 7000)).save(out, format="PNG")
    return out.getvalue()


def _zip_bomb(megabytes: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("incident.json", "w") as member:
            for _ in range(megabytes):
                member.write(bytes(MiB))
        archive.writestr("manifest.json", "{}")
        archive.writestr("manifest.sig", "")
    return out.getvalue()


async def _soap_flood(http: httpx.AsyncClient, token: str) -> list[int]:
    headers = {**bearer(token), "Content-Type": "text/xml; charset=utf-8"}
    body = _soap_attributes()
    answers = await asyncio.gather(
        *(http.post("/soap/feed", content=body, headers=headers) for _ in range(20))
    )
    return [a.status_code for a in answers]  # SOAP 1.1 faults travel as HTTP 500


async def _huge_image(http: httpx.AsyncClient, node: EdgeNode) -> list[int]:
    data = _huge_png()
    path = f"/v1/edge/media/{hashlib.sha256(data).hexdigest()}"
    headers = signed_headers(node.signer, path=path, body=data, content_type="image/png")
    return [(await http.post(path, content=data, headers=headers)).status_code]


async def _evidence_bomb(http: httpx.AsyncClient, token: str) -> list[int]:
    headers = {**bearer(token), "Content-Type": "application/zip"}
    body = _zip_bomb(128)
    answers = await asyncio.gather(
        *(
            http.post("/v1/incidents/evidence/verify", content=body, headers=headers)
            for _ in range(4)
        )
    )
    return [a.status_code for a in answers]


async def _unknown_signer_big_bodies(http: httpx.AsyncClient) -> list[int]:
    stranger = RequestSigner(key_id=str(uuid.uuid4()), private_key=generate_key())
    body = bytes(10 * MiB - 1024)
    headers = signed_headers(stranger, path="/v1/edge/events", body=body)
    answers = await asyncio.gather(
        *(http.post("/v1/edge/events", content=body, headers=headers) for _ in range(10))
    )
    return [a.status_code for a in answers]


async def _login_flood(http: httpx.AsyncClient) -> list[int]:
    form = {"grant_type": "password", "username": "nobody", "password": "guess"}
    answers = await asyncio.gather(*(http.post("/oauth/token", data=form) for _ in range(40)))
    return [a.status_code for a in answers]


async def _nul_in_an_event(http: httpx.AsyncClient, node: EdgeNode) -> list[int]:
    bad = event(model_version="1.\x000")
    body = msgspec.json.encode({"events": [bad, event()]})
    headers = signed_headers(node.signer, path="/v1/edge/events", body=body)
    answer = await http.post("/v1/edge/events", content=body, headers=headers)
    assert [r["status"] for r in answer.json()["results"]] == ["rejected", "accepted"]
    return [answer.status_code]


def _worst_loop_lag(metrics_text: str) -> tuple[float, float]:
    """(samples, samples slower than 250 ms) of the API's loop-lag histogram."""
    buckets = {
        sample.labels["le"]: sample.value
        for family in text_string_to_metric_families(metrics_text)
        if family.name == "hub_event_loop_lag_seconds"
        for sample in family.samples
        if sample.name.endswith("_bucket")
    }
    return buckets["+Inf"], buckets["+Inf"] - buckets["0.25"]


@pytest.mark.timeout(180)
async def test_healthz_answers_within_250_ms_under_every_hostile_request(
    api: HubProcess, tokens: tuple[Path, dict[str, str]], edge_node: EdgeNode
) -> None:
    token = tokens[1]
    attacks = {
        "soap attributes": lambda http: _soap_flood(http, token["agency"]),
        "7000x7000 image": lambda http: _huge_image(http, edge_node),
        "evidence zip bomb": lambda http: _evidence_bomb(http, token["officer"]),
        "unknown signer, 10 MB bodies": _unknown_signer_big_bodies,
        "argon2 login flood": _login_flood,
        "NUL in an edge event": lambda http: _nul_in_an_event(http, edge_node),
    }
    statuses: dict[str, list[int]] = {}
    slowest: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=api.url, timeout=60) as http:
        for name, attack in attacks.items():
            with HealthPoller(api.url) as poller:
                statuses[name] = await attack(http)
                await asyncio.sleep(0.3)  # let any work the attack left behind run
            assert not poller.failures, (name, poller.failures[:3])
            assert len(poller.latencies) > 5, name
            slowest[name] = max(poller.latencies)
        metrics = await http.get("/metrics", headers=bearer(token["operator"]))
    late = {name: f"{time * 1000:.0f} ms" for name, time in slowest.items()}
    assert all(time <= BUDGET_SECONDS for time in slowest.values()), f"slowest /healthz: {late}"
    assert set(statuses["soap attributes"]) == {500}  # SOAP faults, refused in milliseconds
    assert set(statuses["7000x7000 image"]) == {413}
    assert set(statuses["evidence zip bomb"]) <= {200, 503}
    assert set(statuses["unknown signer, 10 MB bodies"]) == {401}
    assert set(statuses["argon2 login flood"]) <= {400, 401, 429, 503}
    assert statuses["NUL in an edge event"] == [200]
    samples, slow = _worst_loop_lag(metrics.text)
    assert samples > 10
    assert slow == 0, api.log_file.read_text()[-2000:]
