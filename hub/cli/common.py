"""Shared plumbing of CLI commands: settings, an async runner with services, output."""

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import click
import msgspec

from hub.kit.errors import HubError
from hub.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:  # the runtime imports every domain: loaded only by commands that need it
    from hub.runtime import Services

T = TypeVar("T")


def settings_or_exit() -> Settings:
    """Load settings or stop with one clear line (exit status 2)."""
    try:
        return load_settings()
    except SettingsError as exc:
        click.echo(f"hub: {exc}", err=True)
        sys.exit(2)


def run_with_services(work: "Callable[[Services], Awaitable[T]]") -> T:
    """Run `work` with connected services; a hub error becomes one line and exit status 1."""
    from hub.runtime import build_services, start_services, stop_services

    async def main() -> T:
        services = build_services(settings_or_exit())
        await start_services(services)
        try:
            return await work(services)
        finally:
            await stop_services(services)

    try:
        return asyncio.run(main())
    except HubError as exc:
        click.echo(f"hub: {exc.detail}", err=True)
        sys.exit(1)


def emit(value: object, *, as_json: bool, text: Callable[[], str]) -> None:
    """Print JSON for scripts or the human text."""
    if as_json:
        click.echo(msgspec.json.encode(value).decode())
    else:
        click.echo(text())


def table(headers: list[str], rows: list[list[object]], *, width: int = 40) -> str:
    """A plain-text table: a header, a rule, one line per row; cells cut at `width`."""
    cells = [[_cell(v, width) for v in row] for row in rows]
    sizes = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(n) for h, n in zip(headers, sizes, strict=True)).rstrip()]
    lines.append("  ".join("-" * n for n in sizes))
    lines += ["  ".join(c.ljust(n) for c, n in zip(r, sizes, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _cell(value: object, width: int) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"
