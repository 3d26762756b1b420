"""`hub deliveries list` prints a table with a header, a page at a time with the way to the
next page, and the count; `deliveries show` names the event by its id."""

import subprocess
import sys
from pathlib import Path

import asyncpg
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from hub.app import create_app
from hub.settings import Settings
from tests.hub.delivery.harness import settings_env
from tests.hub.feeds.builders import event, register_agencies, upload
from tests.support import BASE_URL, EdgeNode

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.slow]


def hub(settings: Settings, *args: str) -> str:
    """`hub <args>`'s stdout (it must succeed)."""
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "hub.cli.main", *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


async def dead_letters(settings: Settings, edge_node: EdgeNode, tmp_path: Path) -> list[str]:
    """One event for the three agencies; every delivery marked dead, one second apart."""
    await register_agencies(settings.database_url)
    app = create_app(msgspec.structs.replace(settings, api_tokens_file=str(tmp_path / "t")))
    async with AsyncTestClient(app=app, base_url=BASE_URL) as client:
        await upload(client, edge_node, event())
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch(
            """UPDATE delivery SET status = 'dead', last_error = 'HTTP 410',
                      dead_at = now() - (random() * interval '1 hour')
               RETURNING id"""
        )
    finally:
        await conn.close()
    return [str(r["id"]) for r in rows]


@pytest.mark.timeout(120)
async def test_list_pages_with_header_and_count_and_show_names_the_event(
    settings: Settings, services: object, edge_node: EdgeNode, tmp_path: Path
) -> None:
    ids = await dead_letters(settings, edge_node, tmp_path)
    assert len(ids) >= 2
    first = hub(settings, "deliveries", "list", "--limit", "1").splitlines()
    assert first[0].split() == [
        "delivery",
        "agency",
        "status",
        "attempts",
        "at",
        "(UTC)",
        "code",
        "last",
        "error",
    ]
    assert set(first[1]) <= {"-", " "}
    assert "HTTP 410" in first[2]
    assert first[-1].startswith("1 shown, more exist: add --until '")
    until = first[-1].split("'")[1]
    rest = hub(settings, "deliveries", "list", "--until", until).splitlines()
    assert rest[-1] == f"{len(ids) - 1} dead deliveries in all"
    shown = {line.split()[0] for line in first[2:-1] + rest[2:-1]}
    assert shown == set(ids)  # every dead letter once, across the two pages
    detail = msgspec.json.decode(hub(settings, "deliveries", "show", ids[0]))
    assert "event_pk" not in detail["delivery"]
    assert len(detail["delivery"]["event_id"]) == 36
