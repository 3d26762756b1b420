"""Fixtures of feed tests: a tokens file, the demo agencies, an app that knows both."""

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from hub.app import create_app
from hub.runtime import (
    Services,
    build_services,
    start_policy,
    start_services,
    stop_policy,
    stop_services,
)
from hub.settings import Settings
from tests.hub.feeds.builders import agency_token, issue, register_agencies
from tests.hub.identity.builders import admin_token_fields
from tests.support import BASE_URL


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    """An empty bearer-tokens file for this test."""
    return tmp_path / "tokens.toml"


@pytest.fixture
def feed_settings(settings: Settings, tokens_file: Path) -> Settings:
    """Test settings reading this test's tokens file."""
    return msgspec.structs.replace(settings, api_tokens_file=str(tokens_file))


@pytest.fixture
async def agencies(settings: Settings) -> None:
    """police-north, transit-authority and city-analytics in the registry."""
    await register_agencies(settings.database_url)


@pytest.fixture
def tokens(tokens_file: Path) -> dict[str, str]:
    """Bearer tokens by role, written before any app reads the file (it re-reads the file
    at most once a second, so a token added later may be unknown for that long)."""
    return {
        "police": agency_token(tokens_file, "police-north"),
        "transit": agency_token(tokens_file, "transit-authority"),
        "analytics": agency_token(tokens_file, "city-analytics"),
        "marketing": agency_token(tokens_file, "police-north", purpose="marketing"),
        "south": agency_token(tokens_file, "police-north", jurisdictions=["south"]),
        "unregistered": agency_token(tokens_file, "nobody-agency"),
        "admin": issue(tokens_file, "ada", roles=["admin"], **admin_token_fields()),
    }


@pytest.fixture
async def feed_client(
    feed_settings: Settings, agencies: None, tokens: dict[str, str]
) -> AsyncIterator[AsyncTestClient]:
    """A client on a real app that knows this test's tokens and the demo agencies."""
    async with AsyncTestClient(app=create_app(feed_settings), base_url=BASE_URL) as client:
        yield client


@pytest.fixture
async def feed_services(feed_settings: Settings, agencies: None) -> AsyncIterator[Services]:
    """Connected services with the default policy bundle loaded (releases decide for real)."""
    built = build_services(feed_settings)
    await start_services(built)
    watcher = await start_policy(built, role="test")
    yield built
    await stop_policy(built, watcher)
    await stop_services(built)
