"""The `xml` adapter: OASIS CAP 1.2 alerts, signed with enveloped XML-DSig, POSTed to agencies.

Every alert is built only from the released (already redacted) record, validated against
`cap-1.2.xsd` and signed before it leaves; a document that fails the schema is never sent.
Receivers read alerts only through `parse_untrusted`, the schema and `verify_alert`.
"""

from adapters.base import Adapter
from adapters.egress import EgressGuard
from adapters.xml.adapter import XmlAdapter
from adapters.xml.config import XmlConfig
from adapters.xml.keys import generate_signing_identity


def create(*, egress: EgressGuard) -> Adapter:
    """The entry point of kind `xml` (group `hub.adapters`)."""
    return XmlAdapter(egress=egress)


__all__ = ["XmlAdapter", "XmlConfig", "create", "generate_signing_identity"]
