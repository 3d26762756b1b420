"""The `soap` adapter: delivers a released event by calling an agency's SOAP operation.

It loads the agency's WSDL with zeep (once per worker, cached), fills the operation's request
by name from the message (rule in `mapping`), sends the delivery id as the WS-Addressing
MessageID and classifies faults: Server/Receiver retry, Client/Sender dead-letter. It never
puts the record into logs or error text, and reads agency XML only through `parse_untrusted`.
"""

from adapters.base import Adapter
from adapters.egress import EgressGuard
from adapters.soap.adapter import SoapAdapter
from adapters.soap.config import SoapConfig, parse_config


def create(*, egress: EgressGuard) -> Adapter:
    """Entry point `hub.adapters:soap`."""
    return SoapAdapter(egress=egress)


__all__ = ["SoapAdapter", "SoapConfig", "create", "parse_config"]
