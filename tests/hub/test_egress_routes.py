"""The egress list (hub/policy/egress.py) covers the whole app: every route, every adapter
kind and every console page is either a listed way out or listed as carrying no event data,
so a new way out cannot be added without being classified (and so put in the matrix)."""

import re
from pathlib import Path

from litestar.routes import HTTPRoute, WebSocketRoute

from adapters.registry import installed_kinds
from hub.app import create_app
from hub.policy.egress import (
    CONSOLE_PAGES,
    EGRESS,
    NO_EVENT_DATA,
    OUTBOUND_NO_EVENT_DATA,
    SCHEMA_PREFIX,
    egress_adapters,
    egress_routes,
)
from hub.settings import Settings
from tests.support import repo_root

IGNORED_METHODS = {"OPTIONS", "HEAD"}


def app_routes(settings: Settings) -> set[str]:
    """``METHOD /path`` of every handler the app serves (``WS`` for WebSockets)."""
    found: set[str] = set()
    for route in create_app(settings).routes:
        if route.path.startswith(SCHEMA_PREFIX):
            continue
        if isinstance(route, WebSocketRoute):
            found.add(f"WS {route.path}")
        elif isinstance(route, HTTPRoute):
            methods = {m for h in route.route_handlers for m in h.http_methods}
            found |= {f"{m} {route.path}" for m in methods - IGNORED_METHODS}
    return found


def test_every_route_is_a_listed_way_out_or_listed_as_carrying_no_event_data(
    base_settings: Settings,
) -> None:
    served = app_routes(base_settings)
    listed_out, listed_not = set(egress_routes()), set(NO_EVENT_DATA)

    unclassified = sorted(served - listed_out - listed_not)
    stale = sorted((listed_out | listed_not) - served)

    assert not unclassified, (
        f"routes not in hub/policy/egress.py: {unclassified}; add each to EGRESS (and to the "
        "matrix in tests/egress/) or to NO_EVENT_DATA with the reason it carries none"
    )
    assert not stale, f"hub/policy/egress.py lists routes the app does not serve: {stale}"
    assert not listed_out & listed_not


def test_every_adapter_kind_is_a_listed_way_out() -> None:
    assert sorted(egress_adapters()) == installed_kinds()


def test_every_console_page_names_the_ways_out_it_shows() -> None:
    console = repo_root() / "console"
    pages = {p.name for folder in ("pages", "views") for p in (console / folder).glob("*.py")}
    names = {e.name for e in EGRESS}

    assert pages, "no console pages found"
    assert pages == set(CONSOLE_PAGES)
    assert {n for shown in CONSOLE_PAGES.values() for n in shown} <= names


def test_the_egress_document_names_every_way_out() -> None:
    text = Path(repo_root() / "docs" / "egress.md").read_text(encoding="utf-8")

    missing = [e.name for e in EGRESS if f"`{e.name}`" not in text]

    assert not missing, f"docs/egress.md lacks {missing}"


def test_every_outbound_push_without_event_data_names_a_test_that_reads_its_bytes() -> None:
    root = repo_root()
    for name, carries in OUTBOUND_NO_EVENT_DATA.items():
        tests = re.findall(r"tests/[\w/]+\.py", carries)
        assert tests, f"{name} names no test"
        assert all((root / t).is_file() for t in tests), name
