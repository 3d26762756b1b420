"""`hub console`: serve the Streamlit compliance console (console/app.py)."""

import os
import sys
from pathlib import Path

import click

from hub.cli.common import settings_or_exit


@click.command("console")
@click.option("--host", help="Bind address (default: HUB_CONSOLE_HOST).")
@click.option("--port", type=int, help="Port (default: HUB_CONSOLE_PORT).")
@click.option("--api-url", help="The hub API the console calls (default: HUB_CONSOLE_API_URL).")
def console(host: str | None, port: int | None, api_url: str | None) -> None:
    """Serve the compliance console; it calls the hub's REST API as the logged-in user."""
    try:
        import streamlit  # noqa: F401
    except ImportError:
        click.echo(
            "hub: the console needs the `console` extra: pip install 'hub[console]'", err=True
        )
        sys.exit(1)
    import console as package

    settings = settings_or_exit()
    # server.py is an ASGI app (st.App): Streamlit's pages plus the sign-in routes.
    app = Path(package.__file__).resolve().parent / "server.py"
    env = {**os.environ, "HUB_CONSOLE_API_URL": api_url or settings.console_api_url}
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.address",
        host or settings.console_host,
        "--server.port",
        str(port or settings.console_port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    # Become Streamlit (exec): signals reach it directly, so Ctrl-C or SIGTERM stop it
    # cleanly with its own exit status instead of an aborted wrapper.
    os.execve(sys.executable, command, env)  # noqa: S606 - our own interpreter, fixed command
