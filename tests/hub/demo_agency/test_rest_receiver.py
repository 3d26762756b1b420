"""The demo REST receiver on its own: what it accepts, refuses and answers."""

import base64
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient
from standardwebhooks import Webhook

from hub.demo_agency.app import PATHS, create_receiver_app
from hub.demo_agency.inbox import Inbox
from hub.demo_agency.options import ReceiverOptions

# hub/demo_agency/app.py declares `fail(data: FailRequest)`, which Litestar 2.25 deprecates;
# not this module's to change, so only that warning is let through.

OLD_SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
NEW_SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
CLIENTS = {"hub": "client-secret-1"}
RECORD = {"label": "person", "score": 0.8}


def envelope(delivery_id: str, *, kind: str = "detection.released") -> bytes:
    data = {"delivery_id": delivery_id, "record": RECORD}
    return msgspec.json.encode({"type": kind, "timestamp": "2026-11-22T10:00:00Z", "data": data})


def signed(
    body: bytes, delivery_id: str, *secrets: str, when: datetime | None = None
) -> dict[str, str]:
    moment = (when or datetime.now(UTC)).replace(microsecond=0)
    signatures = [Webhook(s).sign(delivery_id, moment, body.decode()) for s in secrets]
    return {
        "webhook-id": delivery_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
    }


async def client_for(options: ReceiverOptions) -> tuple[AsyncTestClient[Any], Inbox]:
    inbox = Inbox()
    app = create_receiver_app(["rest"], options, inbox=inbox)
    return AsyncTestClient(app=app), inbox


@pytest.fixture
async def rest() -> AsyncIterator[tuple[AsyncTestClient[Any], Inbox]]:
    client, inbox = await client_for(ReceiverOptions(webhook_secrets=[OLD_SECRET, NEW_SECRET]))
    async with client:
        yield client, inbox


async def test_accepts_a_message_signed_with_any_accepted_secret(
    rest: tuple[AsyncTestClient[Any], Inbox],
) -> None:
    client, inbox = rest
    for secret in (OLD_SECRET, NEW_SECRET):
        delivery_id = str(uuid.uuid4())
        body = envelope(delivery_id)

        answer = await client.post(
            PATHS["rest"], content=body, headers=signed(body, delivery_id, secret)
        )

        assert answer.status_code == 200
        assert answer.json() == {
            "id": str(uuid.UUID(answer.json()["id"])),
            "duplicate": False,
        }
    assert [item.record for item in inbox.items()] == [RECORD, RECORD]


async def test_repeat_is_acknowledged_with_the_same_id_and_counted(
    rest: tuple[AsyncTestClient[Any], Inbox],
) -> None:
    client, inbox = rest
    delivery_id = str(uuid.uuid4())
    body = envelope(delivery_id)

    first = await client.post(
        PATHS["rest"], content=body, headers=signed(body, delivery_id, OLD_SECRET)
    )
    again = await client.post(
        PATHS["rest"], content=body, headers=signed(body, delivery_id, OLD_SECRET)
    )

    assert again.status_code == 200
    assert again.json() == {"id": first.json()["id"], "duplicate": True}
    assert inbox.summary().duplicates == 1


async def test_test_messages_are_flagged(rest: tuple[AsyncTestClient[Any], Inbox]) -> None:
    client, inbox = rest
    delivery_id = str(uuid.uuid4())
    body = envelope(delivery_id, kind="hub.test")

    await client.post(PATHS["rest"], content=body, headers=signed(body, delivery_id, NEW_SECRET))

    assert inbox.items()[0].test


@pytest.mark.parametrize(
    "tamper",
    ["other_secret", "no_signature", "stale", "garbled_signature", "changed_body"],
)
async def test_bad_signatures_are_401_and_rejected(
    rest: tuple[AsyncTestClient[Any], Inbox], tamper: str
) -> None:
    client, inbox = rest
    delivery_id = str(uuid.uuid4())
    body = envelope(delivery_id)
    other = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    headers = signed(body, delivery_id, other if tamper == "other_secret" else OLD_SECRET)
    if tamper == "no_signature":
        del headers["webhook-signature"]
    if tamper == "stale":
        headers = signed(body, delivery_id, OLD_SECRET, when=datetime.now(UTC) - timedelta(hours=1))
    if tamper == "garbled_signature":
        headers["webhook-signature"] = "v1 nonsense,,"
    if tamper == "changed_body":
        body = body.replace(b"person", b"nobody")

    answer = await client.post(PATHS["rest"], content=body, headers=headers)

    assert answer.status_code == 401
    assert inbox.rejected == 1
    assert inbox.items() == []


@pytest.mark.parametrize("body", [b"{not json", b'{"type": "x"}', b"[]"])
async def test_signed_but_malformed_messages_are_400_and_rejected(
    rest: tuple[AsyncTestClient[Any], Inbox], body: bytes
) -> None:
    client, inbox = rest
    delivery_id = str(uuid.uuid4())

    answer = await client.post(
        PATHS["rest"], content=body, headers=signed(body, delivery_id, OLD_SECRET)
    )

    assert answer.status_code == 400
    assert inbox.rejected == 1


async def test_webhook_id_must_match_the_delivery_id(
    rest: tuple[AsyncTestClient[Any], Inbox],
) -> None:
    client, inbox = rest
    body = envelope(str(uuid.uuid4()))
    other_id = str(uuid.uuid4())

    answer = await client.post(
        PATHS["rest"], content=body, headers=signed(body, other_id, OLD_SECRET)
    )

    assert answer.status_code == 400
    assert inbox.rejected == 1


async def test_oversized_body_is_413(rest: tuple[AsyncTestClient[Any], Inbox]) -> None:
    client, inbox = rest
    delivery_id = str(uuid.uuid4())
    body = b" " * (1 << 20) + envelope(delivery_id)

    answer = await client.post(
        PATHS["rest"], content=body, headers=signed(body, delivery_id, OLD_SECRET)
    )

    assert answer.status_code == 413
    assert inbox.items() == []


async def test_injected_failure_answers_the_status_without_recording(
    rest: tuple[AsyncTestClient[Any], Inbox],
) -> None:
    client, inbox = rest
    inbox.fail_next(1, 503)
    delivery_id = str(uuid.uuid4())
    body = envelope(delivery_id)
    headers = signed(body, delivery_id, OLD_SECRET)

    failed = await client.post(PATHS["rest"], content=body, headers=headers)
    retried = await client.post(PATHS["rest"], content=body, headers=headers)

    assert failed.status_code == 503
    assert failed.headers["retry-after"] == "1"
    assert retried.status_code == 200
    assert inbox.count_of(delivery_id) == 1


async def test_without_configured_secrets_nothing_is_accepted() -> None:
    client, inbox = await client_for(ReceiverOptions())
    delivery_id = str(uuid.uuid4())
    body = envelope(delivery_id)
    async with client:
        answer = await client.post(
            PATHS["rest"], content=body, headers=signed(body, delivery_id, OLD_SECRET)
        )

    assert answer.status_code == 401
    assert inbox.rejected == 1


# OAuth2 -----------------------------------------------------------------------------------


@pytest.fixture
async def oauth() -> AsyncIterator[tuple[AsyncTestClient[Any], Inbox]]:
    options = ReceiverOptions(webhook_secrets=[OLD_SECRET], oauth_clients=CLIENTS)
    client, inbox = await client_for(options)
    async with client:
        yield client, inbox


async def test_token_then_bearer_delivery(oauth: tuple[AsyncTestClient[Any], Inbox]) -> None:
    client, inbox = oauth
    token = await client.post(
        "/rest/token", data={"grant_type": "client_credentials"}, auth=("hub", "client-secret-1")
    )
    delivery_id = str(uuid.uuid4())
    body = envelope(delivery_id)
    headers = signed(body, delivery_id, OLD_SECRET)

    without = await client.post(PATHS["rest"], content=body, headers=headers)
    bearer = {"authorization": f"Bearer {token.json()['access_token']}"}
    answer = await client.post(PATHS["rest"], content=body, headers=headers | bearer)

    assert token.status_code == 200
    assert token.headers["cache-control"] == "no-store"
    assert token.json()["token_type"] == "Bearer"
    assert without.status_code == 401
    assert without.headers["www-authenticate"].startswith("Bearer")
    assert answer.status_code == 200
    assert inbox.rejected == 1
    assert len(inbox.items()) == 1


async def test_token_with_credentials_in_the_form(
    oauth: tuple[AsyncTestClient[Any], Inbox],
) -> None:
    client, _ = oauth
    form = {
        "grant_type": "client_credentials",
        "client_id": "hub",
        "client_secret": "client-secret-1",
    }

    answer = await client.post("/rest/token", data=form)

    assert answer.status_code == 200
    assert (await client.get("/rest/token/stats")).json() == {"issued": 1}


@pytest.mark.parametrize(
    ("auth", "form", "status", "error"),
    [
        (("hub", "wrong"), {"grant_type": "client_credentials"}, 401, "invalid_client"),
        (
            ("nobody", "client-secret-1"),
            {"grant_type": "client_credentials"},
            401,
            "invalid_client",
        ),
        (None, {"grant_type": "client_credentials"}, 401, "invalid_client"),
        (("hub", "client-secret-1"), {"grant_type": "password"}, 400, "unsupported_grant_type"),
    ],
)
async def test_token_endpoint_refusals(
    oauth: tuple[AsyncTestClient[Any], Inbox],
    auth: tuple[str, str] | None,
    form: dict[str, str],
    status: int,
    error: str,
) -> None:
    client, _ = oauth

    answer = await client.post("/rest/token", data=form, auth=auth)

    assert answer.status_code == status
    assert answer.json() == {"error": error}


async def test_expired_tokens_are_refused() -> None:
    options = ReceiverOptions(
        webhook_secrets=[OLD_SECRET], oauth_clients=CLIENTS, oauth_token_ttl_seconds=0
    )
    client, inbox = await client_for(options)
    delivery_id = str(uuid.uuid4())
    body = envelope(delivery_id)
    async with client:
        token = await client.post(
            "/rest/token",
            data={"grant_type": "client_credentials"},
            auth=("hub", "client-secret-1"),
        )
        bearer = {"authorization": f"Bearer {token.json()['access_token']}"}
        answer = await client.post(
            PATHS["rest"], content=body, headers=signed(body, delivery_id, OLD_SECRET) | bearer
        )

    assert answer.status_code == 401
    assert inbox.rejected == 1
