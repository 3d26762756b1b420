"""`hub clients`, `hub users`, `hub keys`: OAuth clients of agencies, console users and the
keys that sign access tokens. Secrets are printed once and only their hashes are kept."""

import os
import sys
from typing import Any

import click
import msgspec

from hub.cli.common import emit, run_with_services
from hub.identity.oauth import (
    ClientCreate,
    ClientCreated,
    ClientRead,
    SigningKeyRead,
    UserCreate,
    UserCreated,
    UserRead,
    add_client,
    add_user,
    disable_user,
    list_clients,
    list_keys,
    list_users,
    revoke_client,
    rotate_keys,
)
from hub.runtime import Services

ACTOR = "cli:" + os.environ.get("USER", "operator")
ROLES = ["agency", "admin", "compliance_officer", "operator"]


def _roles(values: tuple[str, ...]) -> list[str]:
    roles = [r.strip() for value in values for r in value.split(",") if r.strip()]
    unknown = sorted(set(roles) - set(ROLES))
    if unknown or not roles:
        raise click.UsageError(f"--role takes some of {', '.join(ROLES)} (got {unknown or 'none'})")
    return roles


def _convert(fields: dict[str, Any], kind: type[ClientCreate] | type[UserCreate]) -> Any:
    try:
        return msgspec.convert(fields, kind)
    except msgspec.ValidationError as exc:
        raise click.UsageError(str(exc)) from None


@click.group("clients")
def clients() -> None:
    """OAuth clients of agency systems (client-credentials grant)."""


@clients.command("add")
@click.argument("client_id")
@click.option(
    "--role",
    "roles",
    multiple=True,
    default=("agency",),
    show_default=True,
    help="Role (repeatable, or comma-separated).",
)
@click.option("--agency", help="Agency the client acts for.")
@click.option("--jurisdiction", "jurisdictions", multiple=True, help="Jurisdiction (repeatable).")
@click.option("--clearance", type=int, default=0, show_default=True)
@click.option("--purpose", help="Purpose of use, e.g. investigation.")
@click.option("--json", "as_json", is_flag=True, help="Print the client and secret as JSON.")
def clients_add(
    client_id: str,
    roles: tuple[str, ...],
    agency: str | None,
    jurisdictions: tuple[str, ...],
    clearance: int,
    purpose: str | None,
    as_json: bool,
) -> None:
    """Register CLIENT_ID; prints its secret once (only an argon2id hash is kept)."""
    create: ClientCreate = _convert(
        {
            "client_id": client_id,
            "roles": _roles(roles),
            "agency": agency,
            "jurisdictions": list(jurisdictions),
            "clearance": clearance,
            "purpose": purpose,
        },
        ClientCreate,
    )

    async def work(services: Services) -> ClientCreated:
        return await add_client(services.identity, create, actor=ACTOR)

    made = run_with_services(work)
    emit(
        made,
        as_json=as_json,
        text=lambda: (
            f"client_id:     {made.client.client_id}\nclient_secret: {made.client_secret}\n"
            "(the secret is shown once; POST /oauth/token with grant_type=client_credentials)"
        ),
    )


@clients.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def clients_list(as_json: bool) -> None:
    """List clients (never their secrets)."""

    async def work(services: Services) -> list[ClientRead]:
        return await list_clients(services.identity)

    found = run_with_services(work)
    lines = [
        f"{c.client_id:24} {c.status:8} {','.join(c.roles):20} {c.agency or '-':20} "
        f"{','.join(c.jurisdictions) or '-'}"
        for c in found
    ]
    emit(found, as_json=as_json, text=lambda: "\n".join(lines) or "no clients")


@clients.command("revoke")
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True, help="Print the client as JSON.")
def clients_revoke(client_id: str, as_json: bool) -> None:
    """Revoke CLIENT_ID: no new tokens; its live tokens are refused within seconds."""

    async def work(services: Services) -> ClientRead:
        return await revoke_client(services.identity, client_id, actor=ACTOR)

    client = run_with_services(work)
    emit(client, as_json=as_json, text=lambda: f"revoked client {client.client_id}")


@click.group("users")
def users() -> None:
    """Console users (password grant; TOTP always for admins)."""


@users.command("add")
@click.argument("username")
@click.option(
    "--role", "roles", multiple=True, required=True, help="Role (repeatable, or comma-separated)."
)
@click.option("--totp/--no-totp", default=False, help="Require TOTP (always on for admins).")
@click.option("--agency", help="Agency the user belongs to.")
@click.option("--jurisdiction", "jurisdictions", multiple=True, help="Jurisdiction (repeatable).")
@click.option("--clearance", type=int, default=0, show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--json", "as_json", is_flag=True, help="Print the user and TOTP URI as JSON.")
def users_add(
    username: str,
    roles: tuple[str, ...],
    totp: bool,
    agency: str | None,
    jurisdictions: tuple[str, ...],
    clearance: int,
    password_stdin: bool,
    as_json: bool,
) -> None:
    """Register USERNAME; prints the TOTP provisioning URI once (scan it into an app)."""
    password = (
        sys.stdin.readline().rstrip("\n")
        if password_stdin
        else click.prompt("Password", hide_input=True, confirmation_prompt=True)
    )
    create: UserCreate = _convert(
        {
            "username": username,
            "password": password,
            "roles": _roles(roles),
            "totp": totp,
            "agency": agency,
            "jurisdictions": list(jurisdictions),
            "clearance": clearance,
        },
        UserCreate,
    )

    async def work(services: Services) -> UserCreated:
        return await add_user(services.identity, create, actor=ACTOR)

    made = run_with_services(work)
    emit(
        made,
        as_json=as_json,
        text=lambda: (
            f"user {made.user.username} ({','.join(made.user.roles)})"
            + (f"\nTOTP (shown once): {made.totp_uri}" if made.totp_uri else "")
        ),
    )


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def users_list(as_json: bool) -> None:
    """List console users."""

    async def work(services: Services) -> list[UserRead]:
        return await list_users(services.identity)

    found = run_with_services(work)
    lines = [
        f"{u.username:24} {u.status:9} {','.join(u.roles):30} totp={'yes' if u.totp else 'no'}"
        for u in found
    ]
    emit(found, as_json=as_json, text=lambda: "\n".join(lines) or "no users")


@users.command("disable")
@click.argument("username")
@click.option("--json", "as_json", is_flag=True, help="Print the user as JSON.")
def users_disable(username: str, as_json: bool) -> None:
    """Disable USERNAME: refresh tokens revoked, live access tokens refused within seconds."""

    async def work(services: Services) -> UserRead:
        return await disable_user(services.identity, username, actor=ACTOR)

    user = run_with_services(work)
    emit(user, as_json=as_json, text=lambda: f"disabled user {user.username}")


@click.group("keys")
def keys() -> None:
    """ES256 keys that sign access tokens (published at /.well-known/jwks.json)."""


@keys.command("rotate")
@click.option("--json", "as_json", is_flag=True, help="Print the new key as JSON.")
def keys_rotate(as_json: bool) -> None:
    """Make a new signing key; old keys keep verifying until their tokens have expired."""

    async def work(services: Services) -> SigningKeyRead:
        return await rotate_keys(services.identity, actor=ACTOR)

    key = run_with_services(work)
    emit(key, as_json=as_json, text=lambda: f"new signing key {key.kid}")


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def keys_list(as_json: bool) -> None:
    """List signing keys, newest first."""

    async def work(services: Services) -> list[SigningKeyRead]:
        return await list_keys(services.identity)

    found = run_with_services(work)
    lines = [
        f"{k.kid}  {'signing' if k.signing else 'verify until ' + str(k.verify_until)}"
        for k in found
    ]
    emit(found, as_json=as_json, text=lambda: "\n".join(lines) or "no keys")
