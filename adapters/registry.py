"""Adapter discovery through the `hub.adapters` entry-point group."""

import logging
from importlib.metadata import entry_points

from adapters.base import Adapter
from adapters.egress import EgressGuard

GROUP = "hub.adapters"

log = logging.getLogger(__name__)


def load_adapters(egress: EgressGuard) -> dict[str, Adapter]:
    """One instance of every installed adapter that loads, by kind, each bound to `egress`.

    An adapter that fails to import or build is left out and logged, not fatal: one broken
    third-party plugin must not stop deliveries to every other agency. Agencies of a missing
    kind are refused at registration and their deliveries wait as dead letters for replay.
    """
    found: dict[str, Adapter] = {}
    for ep in entry_points(group=GROUP):
        try:
            adapter = ep.load()(egress=egress)
        except Exception as exc:  # a plugin's import or factory failed: skip that kind
            log.error("adapter %r failed to load: %s: %s", ep.name, type(exc).__name__, exc)
            continue
        if adapter.kind != ep.name:
            log.error("entry point %r built an adapter of kind %r; skipped", ep.name, adapter.kind)
            continue
        found[ep.name] = adapter
    return found


def installed_kinds() -> list[str]:
    """Names of the declared adapter kinds, without importing them."""
    return sorted(ep.name for ep in entry_points(group=GROUP))
