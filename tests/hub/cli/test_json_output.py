"""`--json` prints only JSON on stdout (logs go to stderr), for every command that has it,
run as a user runs them: `hub ...` in a subprocess against the test database."""

import json
import subprocess
import sys

import pytest

from hub.settings import Settings
from tests.hub.delivery.harness import settings_env

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.slow]

COMMANDS = [
    ["retention", "report", "--json"],
    ["retention", "run", "--dry-run", "--json"],
    ["agencies", "list", "--json"],
    ["deliveries", "list", "--json"],
    ["users", "list", "--json"],
    ["audit", "checkpoints", "--json"],
]


def run_hub(settings: Settings, args: list[str]) -> subprocess.CompletedProcess[str]:
    """`hub <args>` with the test settings, info-level logs on."""
    env = {**settings_env(settings), "HUB_LOG_LEVEL": "info", "HUB_LOG_JSON": "true"}
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "hub.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.timeout(300)
@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_json_flag_prints_only_json_on_stdout(
    settings: Settings, services: object, args: list[str]
) -> None:
    done = run_hub(settings, args)
    assert done.returncode == 0, done.stderr[-2000:]
    json.loads(done.stdout)  # the whole of stdout is one JSON document
