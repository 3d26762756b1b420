"""`hub agencies positions`: an operator maps the numbers an agency was shown back to the
hub-wide positions and events (ADR 0042), and back again; bad input is one line and exit 1."""

import asyncio
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner, Result
from litestar.testing import AsyncTestClient

from hub.app import create_app
from hub.cli.main import main
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


async def hub(settings: Settings, *args: str) -> Result:
    """`hub <args>` in this process (the command runs its own event loop, so in a thread):
    a second each instead of a fresh interpreter's imports."""
    invoke = CliRunner().invoke
    return await asyncio.to_thread(invoke, main, list(args), env=settings_env(settings))


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

    done = await hub(settings, "agencies", "positions", "police-north", *shown, "--json")
    assert done.exit_code == 0, done.output
    found = msgspec.json.decode(done.stdout)
    assert [f["shown"] for f in found] == [int(s) for s in shown]
    assert [f["event_id"] for f in found] == [item["event_id"] for item in page["items"]]
    assert {f["event_id"] for f in found} == {e["event_id"] for e in events}
    back = await hub(
        settings, "agencies", "positions", "police-north", "--hub-wide",
        *(str(f["seq"]) for f in found), "--json",
    )  # fmt: skip
    assert [f["shown"] for f in msgspec.json.decode(back.stdout)] == [int(s) for s in shown]
    text = (await hub(settings, "agencies", "positions", "police-north", shown[0])).stdout
    assert text.splitlines()[0].split() == ["SHOWN", "SEQ", "EVENT", "CAPTURED"]
    assert page["items"][0]["event_id"] in text

    # Another agency's numbering gives other hub-wide positions for the same numbers.
    other = await hub(settings, "agencies", "positions", "transit-authority", *shown, "--json")
    assert [f["seq"] for f in msgspec.json.decode(other.stdout)] != [f["seq"] for f in found]
    for args, message in (
        (["nobody", "1"], "no agency"),
        (["police-north", "0"], "feed position"),
        (["police-north", "--hub-wide", str(10**15)], "feed position"),
    ):
        refused = await hub(settings, "agencies", "positions", *args)
        assert refused.exit_code == 1
        assert isinstance(refused.exception, SystemExit)  # the CLI's own exit, not a crash
        assert message in refused.stderr
        assert "Traceback" not in refused.stderr
