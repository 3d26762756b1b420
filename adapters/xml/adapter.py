"""The `xml` adapter: one signed CAP 1.2 alert per delivery, POSTed to the agency."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import msgspec
from lxml import etree

from adapters.base import (
    MAX_DETAIL_CHARS,
    ConfigError,
    Message,
    PermanentError,
    Receipt,
    RetryableError,
    classify_status,
    parse_retry_after,
)
from adapters.egress import EgressGuard, ResponseTooLargeError
from adapters.exchange import Answer, exchange
from adapters.xml.cap import CapSchemaError, build_alert, load_schema, utc_now, validate_alert
from adapters.xml.config import XmlConfig, convert_config
from adapters.xml.signing import SigningIdentity, SigningKeyError, load_identity, sign_alert
from hub.kit.xmlsafe import UnsafeXMLError, parse_untrusted

CONTENT_TYPE = "application/cap+xml"
# Agencies answer with a small ack; anything bigger is not an ack and is not parsed.
MAX_ANSWER_BYTES = 64 * 1024
# Names an agency's ack may give its own id under (JSON key or XML element local name).
REFERENCE_NAMES = ("receipt_id", "reference", "id")

# A key file is re-read when it changes on disk, so a rotated key needs no worker restart.
_FileStamp = tuple[int, int, int]  # inode, mtime, size
_Stamps = tuple[_FileStamp, _FileStamp]


class XmlAdapter:
    """Signs with the agency's configured key; one HTTP client and schema per worker process."""

    kind = "xml"
    # The signing key's location is stored sealed (hub/delivery/secrets.py).
    secret_paths = ("signing_key_file",)

    def __init__(self, *, egress: EgressGuard | None = None) -> None:
        self.egress = egress or EgressGuard()
        # The transport caps the answer after decoding: a gzip bomb stops at MAX_ANSWER_BYTES.
        # Requests go to it directly (adapters/exchange.py), without a client's layers.
        self._transport = self.egress.async_transport(max_response_bytes=MAX_ANSWER_BYTES)
        self._schema: etree.XMLSchema = load_schema()
        # (key file, cert file) -> the stamps it was loaded at, and the loaded identity.
        self._identities: dict[tuple[str, str], tuple[_Stamps, SigningIdentity]] = {}

    def parse_config(self, raw: Mapping[str, Any]) -> XmlConfig:
        """The typed config; the key and certificate must exist, load and belong together."""
        config = convert_config(raw)
        try:
            self._identity(config)
        except SigningKeyError as exc:
            raise ConfigError(str(exc)) from None
        return config

    def endpoint(self, config: XmlConfig) -> str:
        """The agency's URL."""
        return config.url

    def urls(self, config: XmlConfig) -> list[str]:
        """The one URL alerts are POSTed to."""
        return [config.url]

    async def deliver(self, message: Message, config: XmlConfig) -> Receipt:
        """Build, sign, validate and POST one alert; one attempt, classified on failure."""
        # Built, signed and validated on the loop: about 0.15 ms of CPU and a stat of the key
        # files (adapters/xml/signing.py), less than handing it to a thread and back costs.
        body = self._document(message, config)
        headers = {"Content-Type": CONTENT_TYPE, "Idempotency-Key": str(message.delivery_id)}
        headers |= {
            k: v for k, v in message.trace_context.items() if k in ("traceparent", "tracestate")
        }
        try:
            answer = await exchange(
                self._transport,
                config.url,
                content=body,
                headers=headers,
                timeout=config.timeout_seconds,
                max_bytes=MAX_ANSWER_BYTES,
            )
        except httpx.TimeoutException:
            raise RetryableError(
                f"agency did not answer within {config.timeout_seconds:g}s"
            ) from None
        except ResponseTooLargeError:
            raise RetryableError(f"agency answer larger than {MAX_ANSWER_BYTES} bytes") from None
        except httpx.TransportError as exc:  # refused and reset connections
            # The exception's own text can carry the URL; the attempt row gets its type only.
            raise RetryableError(f"cannot reach the agency ({type(exc).__name__})") from None
        if not 200 <= answer.status_code < 300:
            retry_after = parse_retry_after(answer.headers.get("Retry-After"))
            raise classify_status(answer.status_code, retry_after=retry_after)
        return Receipt(status_code=answer.status_code, reference=_reference_of(answer))

    def render(self, message: Message, *, sender: str, identity: SigningIdentity) -> bytes:
        """The signed, schema-checked document for one message (blocking; CPU only)."""
        try:
            signed = sign_alert(build_alert(message, sender=sender, sent=utc_now()), identity)
            validate_alert(self._schema, signed)
        except CapSchemaError as exc:
            raise PermanentError(str(exc)) from None
        except ValueError as exc:  # text lxml refuses, or a key signxml cannot use
            raise PermanentError(f"cannot build the CAP alert: {exc}") from None
        document: bytes = etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
        return document

    def _document(self, message: Message, config: XmlConfig) -> bytes:
        try:
            identity = self._identity(config)
        except SigningKeyError as exc:
            raise PermanentError(f"xml signing identity unusable: {exc}") from None
        return self.render(message, sender=config.sender, identity=identity)

    async def aclose(self) -> None:
        """Close the transport's connections."""
        await self._transport.aclose()

    def _identity(self, config: XmlConfig) -> SigningIdentity:
        key_file, cert_file = Path(config.signing_key_file), Path(config.signing_cert_file)
        stamps = (_stamp(key_file, "signing_key_file"), _stamp(cert_file, "signing_cert_file"))
        cached = self._identities.get((config.signing_key_file, config.signing_cert_file))
        if cached is not None and cached[0] == stamps:
            return cached[1]
        identity = load_identity(key_file, cert_file)
        self._identities[(config.signing_key_file, config.signing_cert_file)] = (stamps, identity)
        return identity


def _stamp(path: Path, field: str) -> _FileStamp:
    try:
        info = path.stat()
    except OSError as exc:
        raise SigningKeyError(field, f"cannot read {path}: {exc.strerror}") from None
    return (info.st_ino, info.st_mtime_ns, info.st_size)


def _reference_of(answer: Answer) -> str | None:
    """The agency's own id for the alert, from a JSON or XML ack; None when it gives none."""
    content = answer.body
    if not content or answer.truncated:
        return None
    media_type = answer.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if media_type.endswith("json"):
        return _json_reference(content)
    if media_type.endswith("xml"):
        return _xml_reference(content)
    return None


def _json_reference(content: bytes) -> str | None:
    try:
        answer = msgspec.json.decode(content)
    except msgspec.DecodeError:
        return None
    if not isinstance(answer, dict):
        return None
    found = next((answer[n] for n in REFERENCE_NAMES if isinstance(answer.get(n), str)), None)
    return found[:MAX_DETAIL_CHARS] if found else None


def _xml_reference(content: bytes) -> str | None:
    try:
        root = parse_untrusted(content, max_bytes=MAX_ANSWER_BYTES)
    except UnsafeXMLError:
        return None
    for element in root.iter():
        if etree.QName(element).localname in REFERENCE_NAMES and element.text:
            return element.text.strip()[:MAX_DETAIL_CHARS] or None
    return None
