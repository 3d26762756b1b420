"""`hub agencies positions`: an operator maps the numbers an agency was shown back to the
hub-wide positions and events (ADR 0042), and back again; bad input is one line and exit 1."""

import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from hub.app import create_app
from hub.settings import Settings
from tests.hub.delivery.harness import settings_env
from tests.hub.feeds.builders import (
    NORTH_CAMERA,
    agency_token,
    bearer,
    event,
    register_agencies,
    upload,
)
from tests.support import BASE_URL, EdgeNode

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.slow]


def hub(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "hub.cli.main", *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.timeout(120)
async def test_shown_numbers_map_to_events_and_back(
    settings: Settings, services: object, edge_node: EdgeNode, tmp_path: Path
) -> None:
    await register_agencies(settings.database_url)
    tokens = tmp_path / "tokens.toml"
    police = agency_token(tokens, "police-north")
    app = create_app(msgspec.structs.replace(settings, api_tokens_file=str(tokens)))
    events = [event(NORTH_CAMERA), event(NORTH_CAMERA)]
    async with AsyncTestClient(app=app, base_url=BASE_URL) as client:
        await upload(client, edge_node, *events)
        page = (await client.get("/v1/feeds/events", headers=bearer(police))).json()
    shown = [str(item["seq"]) for item in page["items"]]
    assert len(shown) == 2

    done = hub(settings, "agencies", "positions", "police-north", *shown, "--json")
    assert done.returncode == 0, done.stderr
    found = msgspec.json.decode(done.stdout)
    assert [f["shown"] for f in found] == [int(s) for s in shown]
    assert [f["event_id"] for f in found] == [item["event_id"] for item in page["items"]]
    assert {f["event_id"] for f in found} == {e["event_id"] for e in events}
    back = hub(
        settings, "agencies", "positions", "police-north", "--hub-wide",
        *(str(f["seq"]) for f in found), "--json",
    )  # fmt: skip
    assert [f["shown"] for f in msgspec.json.decode(back.stdout)] == [int(s) for s in shown]
    text = hub(settings, "agencies", "positions", "police-north", shown[0]).stdout
    assert text.splitlines()[0].split() == ["SHOWN", "SEQ", "EVENT", "CAPTURED"]
    assert page["items"][0]["event_id"] in text

    # Another agency's numbering gives other hub-wide positions for the same numbers.
    other = hub(settings, "agencies", "positions", "transit-authority", *shown, "--json")
    assert [f["seq"] for f in msgspec.json.decode(other.stdout)] != [f["seq"] for f in found]
    for args, message in (
        (["nobody", "1"], "no agency"),
        (["police-north", "0"], "feed position"),
        (["police-north", "--hub-wide", str(10**15)], "feed position"),
    ):
        refused = hub(settings, "agencies", "positions", *args)
        assert refused.returncode == 1
        assert message in refused.stderr
        assert "Traceback" not in refused.stderr
