"""The `jetstream` adapter: released events published to an agency's NATS JetStream subject.

For a site or an enterprise consumer that wants a stream rather than calls. Each delivery is
one publish of the REST webhook's JSON body to the agency's subject, with the delivery id as
`Nats-Msg-Id`: inside the stream's duplicate window a re-send (a lost acknowledgement, a
worker killed mid-batch) is acknowledged without being stored twice. The stream, not the
consumer, acknowledges: consumers read and acknowledge at their own pace. It never logs
credentials and never puts the record or an address into an error message.
"""

from adapters.base import Adapter
from adapters.egress import EgressGuard
from adapters.jetstream.adapter import JetStreamAdapter, classify_error
from adapters.jetstream.config import JetStreamConfig, parse_config
from adapters.jetstream.connections import ServerEgressGuard


def create(*, egress: EgressGuard) -> Adapter:
    """A new JetStream adapter (the `hub.adapters` entry point)."""
    return JetStreamAdapter(egress=egress)


__all__ = [
    "JetStreamAdapter",
    "JetStreamConfig",
    "ServerEgressGuard",
    "classify_error",
    "create",
    "parse_config",
]
