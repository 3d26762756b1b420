"""Adapter discovery through the `hub.adapters` entry-point group."""

from importlib.metadata import entry_points

from adapters.base import Adapter

GROUP = "hub.adapters"


class UnknownAdapterError(LookupError):
    """No adapter of that kind is installed."""


def load_adapters() -> dict[str, Adapter]:
    """One instance of every installed adapter, by kind."""
    found: dict[str, Adapter] = {}
    for ep in entry_points(group=GROUP):
        factory = ep.load()
        adapter = factory()
        if adapter.kind != ep.name:
            raise RuntimeError(f"entry point {ep.name!r} built an adapter of kind {adapter.kind!r}")
        found[ep.name] = adapter
    return found


def installed_kinds() -> list[str]:
    """Names of the installed adapter kinds, without importing them."""
    return sorted(ep.name for ep in entry_points(group=GROUP))
