"""Redis settings for several hosts: sentinel addresses are parsed and validated, and arq is
pointed at the sentinels (not at HUB_REDIS_URL's host) when they are configured."""

import msgspec
import pytest

from hub.kit.redis import arq_redis_pool, arq_redis_settings, parse_sentinels
from hub.settings import Settings, SettingsError, load_settings


def test_sentinel_addresses_are_parsed() -> None:
    assert parse_sentinels("") == []
    assert parse_sentinels("10.0.0.1:26379, s2:26380") == [("10.0.0.1", 26379), ("s2", 26380)]
    assert parse_sentinels("[fd00::1]:26379") == [("fd00::1", 26379)]


@pytest.mark.parametrize("bad", ["s1", "s1:", ":26379", "s1:port", "s1:26379;s2:26379"])
def test_a_wrong_sentinel_list_stops_start_up(bad: str) -> None:
    with pytest.raises(SettingsError, match="HUB_REDIS_SENTINELS"):
        load_settings({"HUB_REDIS_SENTINELS": bad})


def test_arq_goes_through_the_sentinels_with_the_urls_db_and_password() -> None:
    settings = msgspec.structs.replace(
        Settings(),
        redis_url="redis://:s3cret@ignored:6379/3",
        redis_sentinels="a:26379,b:26379",
        redis_sentinel_master="hubc",
    )
    arq = arq_redis_settings(settings)
    assert arq.sentinel is True
    assert arq.host == [("a", 26379), ("b", 26379)]
    assert (arq.sentinel_master, arq.database, arq.password) == ("hubc", 3, "s3cret")
    assert arq_redis_pool(settings) is not None


def test_without_sentinels_arq_uses_the_url() -> None:
    settings = msgspec.structs.replace(Settings(), redis_url="redis://r1:6380/2")
    arq = arq_redis_settings(settings)
    assert (arq.sentinel, arq.host, arq.port, arq.database) == (False, "r1", 6380, 2)
    assert arq_redis_pool(settings) is None
