"""How a demo agency receiver is set up (shared by the REST, SOAP and XML receivers)."""

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ReceiverOptions:
    """Secrets and trust anchors a receiver checks incoming messages against.

    `webhook_secrets`: Standard Webhooks secrets (`whsec_...`) the REST receiver accepts, any
    of them (rotation). `xml_trusted_cert_pem`: certificate whose key must have signed each XML
    document. `public_base_url`: where the receiver is reachable (the SOAP WSDL names it).
    """

    webhook_secrets: list[str] = field(default_factory=list)
    xml_trusted_cert_pem: bytes | None = None
    public_base_url: str = "http://127.0.0.1:8101"
    # REST receiver: when set, require an OAuth2 bearer token from `POST /rest/token`
    # (client credentials; client_id -> client_secret) and issue tokens for this long.
    oauth_clients: dict[str, str] = field(default_factory=dict)
    oauth_token_ttl_seconds: int = 3600
