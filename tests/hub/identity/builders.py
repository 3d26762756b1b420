"""Builders for identity tests: registered clients and users, token requests."""

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
from litestar.testing import AsyncTestClient

from hub.identity.oauth import ClientCreate, UserCreate, add_client, add_user
from hub.runtime import Services

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
PASSWORD = "correct horse battery staple"


async def agency_client(services: Services, client_id: str = "transit-bot") -> str:
    """Register an agency client; returns its secret."""
    made = await add_client(
        services.identity,
        ClientCreate(
            client_id=client_id,
            roles=["agency"],
            agency="transit-authority",
            jurisdictions=["central"],
            clearance=2,
            purpose="traffic",
        ),
        actor="test",
    )
    return made.client_secret


async def admin_user(services: Services, username: str = "ada") -> pyotp.TOTP:
    """Register an admin (TOTP is forced); returns the TOTP generator."""
    made = await add_user(
        services.identity,
        UserCreate(username=username, password=PASSWORD, roles=["admin"]),
        actor="test",
    )
    assert made.totp_uri is not None
    return pyotp.parse_uri(made.totp_uri)  # type: ignore[return-value]


def basic(client_id: str, secret: str) -> dict[str, str]:
    """HTTP Basic client authentication headers plus the form content type."""
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {**FORM, "Authorization": f"Basic {raw}"}


async def client_token(http: AsyncTestClient[Any], client_id: str, secret: str) -> str:
    """An access token by the client-credentials grant."""
    answer = await http.post(
        "/oauth/token", content=b"grant_type=client_credentials", headers=basic(client_id, secret)
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    """Authorization header for a bearer token."""
    return {"Authorization": f"Bearer {token}"}


def admin_token_fields(hours: int = 1) -> dict[str, object]:
    """What a static admin token entry needs besides its roles (as `hub tokens create
    --role admin` writes it after checking the admin's password and TOTP code)."""
    now = datetime.now(UTC)
    return {
        "created_at": now,
        "expires_at": now + timedelta(hours=hours),
        "second_factor": "totp:test",
    }
