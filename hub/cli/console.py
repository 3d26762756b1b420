"""`hub console`: serve the Streamlit compliance console (console/app.py)."""

import os
import signal
import sys

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
    settings = settings_or_exit()
    os.environ["HUB_CONSOLE_API_URL"] = api_url or settings.console_api_url
    _serve(host or settings.console_host, port or settings.console_port)


def _serve(host: str, port: int) -> None:
    """Serve console.server:app (st.App: Streamlit's pages plus the sign-in routes) with
    uvicorn; Streamlit's own settings are console/.streamlit/config.toml."""
    import uvicorn

    # uvicorn stops cleanly on SIGINT/SIGTERM, then raises the signal again under the
    # handlers it found: these make that a normal end (exit 0), not a kill.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    uvicorn.run("console.server:app", host=host, port=port, log_level="warning", access_log=False)
