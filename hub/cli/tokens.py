"""`hub tokens`: static bearer tokens for people and systems (until OAuth2 arrives)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import msgspec

from hub.cli.common import emit, settings_or_exit
from hub.identity.tokens import TokenEntry, append_token, new_token, read_tokens, token_hash

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
@click.option("--expires-in-days", type=int, help="Expiry; default: none.")
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
    as_json: bool,
) -> None:
    """Create a token for SUBJECT; it is printed once and only its hash is kept."""
    token = new_token()
    expires = (
        None if expires_in_days is None else datetime.now(UTC) + timedelta(days=expires_in_days)
    )
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
        },
        TokenEntry,
    )
    append_token(Path(settings_or_exit().api_tokens_file), entry)
    emit(
        {"token": token, "subject": subject, "roles": list(roles)},
        as_json=as_json,
        text=lambda: f"{token}\n(shown once; send it as 'Authorization: Bearer <token>')",
    )


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
