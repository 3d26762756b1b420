"""What a failed SOAP call means for delivery: retry later, or dead-letter now.

Texts name the failure, never the message: zeep and httpx errors can quote values from the
request, so only their type, status or fault code and the agency's own fault string are kept.
"""

import httpx
from zeep.exceptions import Error as ZeepError
from zeep.exceptions import Fault, TransportError, ValidationError, XMLSyntaxError

from adapters.base import DeliveryError, PermanentError, RetryableError, classify_status
from adapters.egress import ResponseTooLargeError
from adapters.soap.clients import PortNotFoundError
from adapters.soap.mapping import RequestShapeError
from adapters.soap.transport import AgencyStatusError, ForbiddenImportError, UnsafeAnswerError

# SOAP 1.1 Server / SOAP 1.2 Receiver: the agency's side failed, the same message may pass.
_RETRY_FAULTS = {"server", "receiver"}
MAX_FAULT_TEXT = 200


def fault_error(exc: Fault) -> DeliveryError:
    """Server/Receiver faults retry; Client/Sender and every other code do not."""
    code = local_fault_code(exc.code)
    text = f"SOAP fault {code or 'without a code'}: {str(exc.message or '')[:MAX_FAULT_TEXT]}"
    if code.lower() in _RETRY_FAULTS:
        return RetryableError(text)
    return PermanentError(text)


def local_fault_code(code: object) -> str:
    """`soap:Server.Busy` -> `Server`; zeep gives 1.1 codes as prefixed text."""
    text = str(getattr(code, "localname", code) or "")
    return text.rsplit(":", 1)[-1].split(".", 1)[0]


def call_error(exc: Exception, *, timeout_seconds: float) -> DeliveryError | None:
    """The delivery error for an exception raised by one call; None when it is not ours."""
    if isinstance(exc, Fault):
        return fault_error(exc)
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return RetryableError(f"agency did not answer within {timeout_seconds:g}s")
    return _answer_error(exc) or _request_error(exc)


def _answer_error(exc: Exception) -> DeliveryError | None:
    """The agency could not be reached or answered something other than our response."""
    if isinstance(exc, AgencyStatusError):
        return classify_status(exc.status_code, retry_after=exc.retry_after)
    if isinstance(exc, ResponseTooLargeError):
        return RetryableError("agency answer is not a readable SOAP envelope (too large)")
    if isinstance(exc, TransportError):
        if exc.status_code:
            return classify_status(exc.status_code)
        return RetryableError("agency answer could not be read")
    if isinstance(exc, httpx.TransportError):
        return RetryableError(f"could not reach the agency ({type(exc).__name__})")
    if isinstance(exc, UnsafeAnswerError | XMLSyntaxError):
        return RetryableError("agency answer is not a readable SOAP envelope")
    return None


def _request_error(exc: Exception) -> DeliveryError | None:
    """Our request cannot be built from this message for this WSDL: no retry will fix it."""
    if isinstance(exc, ValidationError):
        return PermanentError(f"request does not match the agency's WSDL: {exc}")
    if isinstance(exc, PortNotFoundError | RequestShapeError):
        return PermanentError(str(exc))
    if isinstance(exc, ZeepError | ValueError | TypeError):
        # Raised while serialising values the WSDL's types refuse; their text may quote them.
        return PermanentError(f"request does not match the agency's WSDL ({type(exc).__name__})")
    return None


def load_error(exc: Exception) -> DeliveryError:
    """Loading the WSDL failed: the agency may be down, so retry, unless it can never work."""
    if isinstance(exc, ForbiddenImportError | PortNotFoundError):
        return PermanentError(str(exc))
    if isinstance(exc, TransportError | AgencyStatusError) and exc.status_code:
        return RetryableError(f"WSDL could not be loaded: HTTP {exc.status_code}")
    return RetryableError(f"WSDL could not be loaded ({type(exc).__name__})")
