"""`hub tokens`: static bearer tokens for scripts and systems. An admin token needs the
admin's password and TOTP code and lives at most `MAX_ADMIN_HOURS` (ADR 0010)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import msgspec

from hub.cli.common import emit, run_with_services, settings_or_exit
from hub.identity.oauth import confirm_admin_second_factor
from hub.identity.tokens import (
    ADMIN_ROLE,
    MAX_ADMIN_HOURS,
    TokenEntry,
    append_token,
    new_token,
    read_tokens,
    token_hash,
)

ROLES = ["edge_node", "agency", "admin", "compliance_officer", "operator"]


@click.group("tokens")
def tokens() -> None:
    """Create and list bearer tokens (stored only as hashes in HUB_API_TOKENS_FILE)."""


@tokens.command("create")
@click.argument("subject")
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    type=click.Choice(ROLES),
    help="Role of the subject (repeatable).",
)
@click.option("--kind", type=click.Choice(["user", "client"]), default="user", show_default=True)
@click.option("--agency", help="Agency the subject acts for.")
@click.option("--jurisdiction", "jurisdictions", multiple=True, help="Jurisdiction (repeatable).")
@click.option("--clearance", type=int, default=0, show_default=True)
@click.option("--purpose", help="Purpose of use (agencies).")
@click.option("--expires-in-days", type=int, help="Expiry; default: none (not for admins).")
@click.option(
    "--expires-in-hours",
    type=click.IntRange(1, MAX_ADMIN_HOURS),
    help=f"Expiry of an admin token (required for --role admin, at most {MAX_ADMIN_HOURS}).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the token and entry as JSON.")
def create(
    subject: str,
    roles: tuple[str, ...],
    kind: str,
    agency: str | None,
    jurisdictions: tuple[str, ...],
    clearance: int,
    purpose: str | None,
    expires_in_days: int | None,
    expires_in_hours: int | None,
    as_json: bool,
) -> None:
    """Create a token for SUBJECT; it is printed once and only its hash is kept. For
    --role admin, SUBJECT is a console admin who proves password and TOTP code now."""
    token, now = new_token(), datetime.now(UTC)
    expires = None if expires_in_days is None else now + timedelta(days=expires_in_days)
    second_factor = None
    if ADMIN_ROLE in roles:
        hours = _admin_hours(expires_in_days, expires_in_hours)
        expires = now + timedelta(hours=hours)
        second_factor = _prove_second_factor(subject, hours=hours)
    entry = msgspec.convert(
        {
            "sha256": token_hash(token),
            "subject": subject,
            "kind": kind,
            "roles": list(roles),
            "agency": agency,
            "jurisdictions": list(jurisdictions),
            "clearance": clearance,
            "purpose": purpose,
            "expires_at": expires,
            "created_at": now,
            "second_factor": second_factor,
        },
        TokenEntry,
    )
    append_token(Path(settings_or_exit().api_tokens_file), entry)
    emit(
        {"token": token, "subject": subject, "roles": list(roles)},
        as_json=as_json,
        text=lambda: f"{token}\n(shown once; send it as 'Authorization: Bearer <token>')",
    )


def _admin_hours(days: int | None, hours: int | None) -> int:
    """An admin token's lifetime: --expires-in-hours, never days, never unlimited."""
    if days is not None or hours is None:
        raise click.UsageError(
            f"an admin token needs --expires-in-hours (1-{MAX_ADMIN_HOURS}), not days"
        )
    return hours


def _prove_second_factor(username: str, *, hours: int) -> str:
    """Ask for the admin's password and TOTP code and check them at the hub's database
    (counted by the sign-in throttle, audited); returns what the entry records."""
    password = click.prompt(f"password of {username}", hide_input=True, err=True)
    code = click.prompt("TOTP code", err=True)
    run_with_services(
        lambda services: confirm_admin_second_factor(
            services.identity, username, password, code, hours=hours
        )
    )
    return f"totp:{username}"


@tokens.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_(as_json: bool) -> None:
    """List token subjects and roles (never the tokens)."""
    entries = read_tokens(Path(settings_or_exit().api_tokens_file)).token
    lines = [f"{e.subject:24} {','.join(e.roles):30} {e.sha256[:12]}" for e in entries]
    emit(
        [msgspec.structs.replace(e, sha256=e.sha256[:12]) for e in entries],
        as_json=as_json,
        text=lambda: "\n".join(lines) or "no tokens",
    )
