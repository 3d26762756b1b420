"""OAuth2 client-credentials tokens for agencies that want a bearer token with each webhook.

One authlib `AsyncOAuth2Client` per (token endpoint, client, scope, TLS setup) fetches
tokens; the access token is cached until shortly before it expires, so a busy worker asks
the token endpoint about once per token lifetime, not once per delivery.
"""

import asyncio
import hashlib
import re
import time
import warnings
from typing import Any

import httpx

from adapters.base import DeliveryError, PermanentError, RetryableError, classify_status
from adapters.egress import EgressGuard
from adapters.rest.config import OAuth2Config, RestConfig
from adapters.rest.transport import TlsKey, ssl_context, tls_key

# A token answer is a small JSON object; more than this is not one.
MAX_TOKEN_ANSWER_BYTES = 64 * 1024
# Refresh this long before expiry (capped at a tenth of the lifetime for short-lived tokens).
REFRESH_MARGIN_SECONDS = 30.0
# OAuth2 errors that say "try later"; every other error code is a configuration problem.
RETRYABLE_OAUTH_ERRORS = frozenset({"temporarily_unavailable", "server_error"})
_ERROR_CODE = re.compile(r"^[\x20-\x7e]{1,64}$")


def _authlib() -> tuple[type[Any], type[Exception]]:
    """authlib's async client and error classes.

    authlib 1.9 warns that plain httpx is deprecated in favour of httpx2 when imported; the
    hub runs on httpx, so that one warning is silenced here rather than turned into an error.
    """
    with warnings.catch_warnings():
        from authlib.deprecate import AuthlibDeprecationWarning

        warnings.simplefilter("ignore", AuthlibDeprecationWarning)
        from authlib.integrations.base_client import OAuthError
        from authlib.integrations.httpx_client import AsyncOAuth2Client

    return AsyncOAuth2Client, OAuthError


class _Slot:
    """One OAuth2 client and its cached token."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.lock = asyncio.Lock()
        self.access_token: str | None = None
        self.refresh_at = 0.0  # time.monotonic() after which the token is fetched anew


def _slot_key(oauth2: OAuth2Config, tls: TlsKey) -> tuple[object, ...]:
    # The secret is hashed so a changed secret gets a fresh client, without keeping it twice.
    digest = hashlib.sha256(oauth2.client_secret.encode()).hexdigest()
    return (oauth2.token_url, oauth2.client_id, digest, oauth2.scope, tls)


class TokenCache:
    """Access tokens by OAuth2 client; `invalidate` drops one the agency refused."""

    def __init__(self, egress: EgressGuard) -> None:
        self.egress = egress
        self._slots: dict[tuple[object, ...], _Slot] = {}

    async def token_for(self, config: RestConfig, oauth2: OAuth2Config) -> str:
        """A valid access token, fetched only when none is cached or it is about to expire."""
        slot = self._slot(config, oauth2)
        if slot.access_token and time.monotonic() < slot.refresh_at:
            return slot.access_token
        async with slot.lock:
            # Another task may have fetched one while this one waited for the lock.
            if slot.access_token and time.monotonic() < slot.refresh_at:
                return slot.access_token
            token = await _fetch_token(slot.client, oauth2, seconds=config.timeout_seconds)
            slot.access_token, slot.refresh_at = token
            return token[0]

    def invalidate(self, config: RestConfig, oauth2: OAuth2Config, access_token: str) -> None:
        """Forget `access_token` (the agency answered 401), unless a newer one replaced it."""
        slot = self._slot(config, oauth2)
        if slot.access_token == access_token:
            slot.access_token = None

    async def aclose(self) -> None:
        """Close every token client."""
        slots, self._slots = list(self._slots.values()), {}
        for slot in slots:
            await slot.client.aclose()

    def _slot(self, config: RestConfig, oauth2: OAuth2Config) -> _Slot:
        key = _slot_key(oauth2, tls_key(config))
        slot = self._slots.get(key)
        if slot is None:
            client_class, _ = _authlib()
            client = client_class(
                client_id=oauth2.client_id,
                client_secret=oauth2.client_secret,
                scope=oauth2.scope,
                token_endpoint=oauth2.token_url,
                grant_type="client_credentials",
                transport=self.egress.async_transport(
                    verify=ssl_context(tls_key(config)), max_response_bytes=MAX_TOKEN_ANSWER_BYTES
                ),
                trust_env=False,
            )
            slot = self._slots[key] = _Slot(client)
        return slot


async def _fetch_token(client: Any, oauth2: OAuth2Config, *, seconds: float) -> tuple[str, float]:
    """(access token, monotonic refresh time) from the token endpoint, or a `DeliveryError`."""
    _, oauth_error = _authlib()
    try:
        token = await client.fetch_token(
            oauth2.token_url, grant_type="client_credentials", timeout=seconds
        )
    except httpx.TimeoutException:
        raise RetryableError(f"token endpoint did not answer within {seconds:g}s") from None
    except httpx.HTTPStatusError as exc:
        raise _token_status_error(exc.response.status_code) from None
    except httpx.RequestError as exc:
        raise RetryableError(f"cannot reach the token endpoint ({type(exc).__name__})") from None
    except oauth_error as exc:
        raise _oauth_error(getattr(exc, "error", None)) from None
    except ValueError:
        raise PermanentError("token endpoint answered no JSON object") from None
    return _cache_entry(token)


def _cache_entry(token: Any) -> tuple[str, float]:
    access_token = token.get("access_token") if isinstance(token, dict) else None
    if not isinstance(access_token, str) or not access_token:
        raise PermanentError("token endpoint answered without an access_token")
    lifetime = token.get("expires_in")
    if not isinstance(lifetime, int | float) or lifetime <= 0:
        # No stated lifetime: keep the token until the agency refuses it with a 401.
        return access_token, float("inf")
    margin = min(REFRESH_MARGIN_SECONDS, lifetime / 10)
    return access_token, time.monotonic() + lifetime - margin


def _token_status_error(status_code: int) -> DeliveryError:
    # Same rule as for the agency itself; the status stays in the text, not in `status_code`,
    # which means what the agency answered.
    retryable = classify_status(status_code).retryable
    error_class = RetryableError if retryable else PermanentError
    return error_class(f"token endpoint answered HTTP {status_code}")


def _oauth_error(code: object) -> DeliveryError:
    # The error code comes from the token endpoint: bounded and printable before it is shown.
    text = code if isinstance(code, str) and _ERROR_CODE.match(code) else "unknown"
    message = f"token endpoint refused the client credentials grant ({text})"
    if text in RETRYABLE_OAUTH_ERRORS:
        return RetryableError(message)
    return PermanentError(message)
