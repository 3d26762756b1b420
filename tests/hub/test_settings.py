"""Settings: env and file, validated, one clear line on a wrong value."""

import subprocess
import sys
from pathlib import Path

import pytest

from hub.settings import SettingsError, load_settings


def test_defaults_load_from_an_empty_environment() -> None:
    settings = load_settings({})
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.signature_max_skew_seconds == 300


def test_environment_values_are_converted() -> None:
    settings = load_settings({"HUB_API_PORT": "9000", "HUB_LOG_JSON": "false"})
    assert (settings.api_port, settings.log_json) == (9000, False)


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    file = tmp_path / "hub.toml"
    file.write_text('api_port = 8100\nredis_prefix = "x:"\n')
    settings = load_settings({"HUB_SETTINGS_FILE": str(file), "HUB_API_PORT": "8200"})
    assert (settings.api_port, settings.redis_prefix) == (8200, "x:")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HUB_API_PORT": "70000"}, "HUB_API_PORT: Expected `int` <= 65535"),
        ({"HUB_API_PORT": "eighty"}, "HUB_API_PORT: Expected `int`"),
        ({"HUB_LOG_LEVEL": "loud"}, "HUB_LOG_LEVEL: Invalid enum value 'loud'"),
        ({"HUB_NO_SUCH_THING": "1"}, "unknown setting HUB_NO_SUCH_THING"),
        ({"HUB_SETTINGS_FILE": "/nonexistent/hub.toml"}, "cannot read settings file"),
    ],
)
def test_a_wrong_value_names_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("[", r"\[").replace("`", "`")):
        load_settings(env)


def test_a_wrong_value_stops_the_cli_with_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli.main", "nodes", "list"],
        env={"HUB_API_PORT": "0", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert done.stderr.startswith("hub: invalid setting: HUB_API_PORT")
