"""Envelopes come only from released data: what reaches an agency's receiver on the wire
carries the event's time, ids and node only as release policy left them in the record."""

import json
import shutil
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from hub.runtime import Services
from hub.settings import Settings
from tests.hub.delivery.harness import (
    Receivers,
    all_settled,
    ingest,
    quick,
    register,
    running_worker,
    wait_until,
)
from tests.hub.ingest.builders import event
from tests.support import EdgeNode

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.commits]

KINDS = ["rest", "soap", "xml"]


@pytest.fixture(scope="module")
def settings(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The default bundle, except that the anonymous profile (city-analytics) also removes
    the node that sent the event."""
    bundle = tmp_path_factory.mktemp("bundle") / "policies"
    shutil.copytree(settings.policy_dir, bundle)
    data_file = bundle / "data.json"
    data = json.loads(data_file.read_text())
    profile = data["hub"]["config"]["release"]["profiles"]["anonymous"]
    profile["redactions"].append({"path": "/node_id", "op": "remove"})
    data_file.write_text(json.dumps(data))
    return msgspec.structs.replace(settings, policy_dir=str(bundle))


def odd_moment() -> datetime:
    """A capture time two hours ago with minutes and seconds no rounding could produce."""
    return (datetime.now(UTC) - timedelta(hours=2)).replace(
        minute=37, second=41, microsecond=512000
    )


async def deliver_one(
    settings: Settings,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: Receivers,
    *,
    kind: str,
    camera: str,
    captured_at: datetime,
) -> bytes:
    """Ingest one event for an agency registered with adapter `kind` and return the raw
    body its receiver took."""
    await ingest(
        client,
        edge_node,
        [event(camera_id=camera, model_name="demo-synthetic", captured_at=captured_at.isoformat())],
    )
    async with running_worker(quick(settings)):
        await wait_until(lambda: all_settled(settings, 1), what="the delivery settled")
    (item,) = receivers.by_kind(kind)
    assert item.raw, "the receiver keeps raw bodies"
    return item.raw


@pytest.mark.parametrize("kind", KINDS)
async def test_hourly_profile_gets_no_exact_capture_time_on_the_wire(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: Receivers,
    kind: str,
) -> None:
    await register(services, receivers, ("city-analytics",), kind=kind)
    moment = odd_moment()
    raw = await deliver_one(
        settings,
        client,
        edge_node,
        receivers,
        kind=kind,
        camera="demo-cam-2",
        captured_at=moment,
    )

    # city-analytics's profile rounds captured_at down to the hour: only that reaches it.
    assert moment.strftime("T%H:00:00").encode() in raw
    assert moment.strftime("%H:37").encode() not in raw
    assert b":37:41" not in raw
    assert b"41.512" not in raw
    assert str(edge_node.node.id).encode() not in raw


@pytest.mark.parametrize("kind", KINDS)
async def test_node_id_reaches_an_agency_only_where_policy_keeps_it(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: Receivers,
    kind: str,
) -> None:
    await register(services, receivers, ("police-north",), kind=kind)
    moment = odd_moment()
    raw = await deliver_one(
        settings,
        client,
        edge_node,
        receivers,
        kind=kind,
        camera="demo-cam-1",
        captured_at=moment,
    )

    # police-north's profile keeps the node and the exact time: both come from the record.
    assert str(edge_node.node.id).encode() in raw
    assert moment.strftime("%H:37:41").encode() in raw
    (item,) = receivers.by_kind(kind)
    assert item.record is not None
    assert item.record["node_id"] == str(edge_node.node.id)
