"""The `hub` command starts fast and answers `-h` everywhere: `hub --help` lists every command
without importing the domains (lazy subcommands), and the listed summaries are the commands'
own."""

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from hub.cli.lazy import LAZY_COMMANDS
from hub.cli.main import main


def every_command(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The path of every command and subcommand under `group`."""
    ctx = click.Context(group)
    found: list[tuple[str, ...]] = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found += every_command(command, (*prefix, name))
    return found


def test_help_imports_no_domain() -> None:
    probe = (
        "import sys; from hub.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('hub.runtime', 'hub.app', 'litestar', 'hub.delivery') "
        "if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run(  # noqa: S603
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert "Commands:" in out
    assert "HEAVY []" in out


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_listed_summary_is_the_commands_own(name: str) -> None:
    command = main.get_command(click.Context(main), name)
    assert command is not None
    assert command.get_short_help_str(500) == LAZY_COMMANDS[name][2]


def test_every_command_answers_dash_h() -> None:
    runner = CliRunner()
    paths = every_command(main)
    assert ("deliveries", "list") in paths
    for path in paths:
        result = runner.invoke(main, [*path, "-h"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output, path
