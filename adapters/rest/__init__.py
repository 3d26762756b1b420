"""The `rest` adapter: Standard Webhooks POSTs to an agency's HTTPS endpoint.

Each delivery is one JSON POST signed with every configured webhook secret (rotation), with
the delivery id as `webhook-id` so the agency can drop repeats. Optional: an OAuth2 bearer
token (client credentials) and client TLS. It never logs, and never puts a secret or the
record into an error message.
"""

from adapters.base import Adapter
from adapters.egress import EgressGuard
from adapters.rest.adapter import RestAdapter
from adapters.rest.config import OAuth2Config, RestConfig, parse_config


def create(*, egress: EgressGuard) -> Adapter:
    """A new REST adapter (the `hub.adapters` entry point)."""
    return RestAdapter(egress=egress)


__all__ = ["OAuth2Config", "RestAdapter", "RestConfig", "create", "parse_config"]
