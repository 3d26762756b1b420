"""The console part of `hub up`: a demo compliance officer and the `hub console` process.

The officer's password is made once, kept in `.hub/demo-console.txt` (0600) and reused; the
account has the `compliance_officer` role without TOTP (admins always need TOTP, officers may
go without it), so the demo console can be opened with a password alone. It holds the demo
cameras' jurisdictions and the highest demo clearance, so its release profile shows the demo's
pictures (blurred as policy says) instead of withholding every one. An officer an older
`hub up` registered with less (clearance 0, no jurisdictions) is brought up to that on every
run; only the account whose credentials file `hub up` wrote, never another user.
"""

import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hub.identity.oauth.schemas import UserCreate
from hub.identity.oauth.service import add_user, list_users, set_user_scope
from hub.kit.errors import ConflictError
from hub.runtime import Services

Say = Callable[[str], None]
USERNAME = "demo-officer"
CREDENTIALS_FILE = "demo-console.txt"
# The demo cameras' jurisdictions (demo_node.DEMO_CAMERAS) and the demo agencies' top clearance.
JURISDICTIONS = ["north", "central"]
CLEARANCE = 3


@dataclass(frozen=True, slots=True)
class DemoConsole:
    """Where the console listens and how to log in."""

    url: str
    username: str
    credentials_file: Path


def console_command(console: DemoConsole, *, api_url: str, port: int) -> tuple[str, list[str]]:
    """The `hub console` child process."""
    base = [sys.executable, "-u", "-m", "hub.cli.main", "console"]
    return ("console", [*base, "--port", str(port), "--api-url", api_url])


async def ensure_demo_officer(
    services: Services, *, state_dir: Path, url: str, say: Say
) -> DemoConsole:
    """Register the demo officer once (password kept 0600 under `state_dir`)."""
    path = state_dir / CREDENTIALS_FILE
    if not path.exists():
        password = secrets.token_urlsafe(18)
        try:
            await add_user(
                services.identity,
                UserCreate(
                    username=USERNAME,
                    password=password,
                    roles=["compliance_officer"],
                    jurisdictions=JURISDICTIONS,
                    clearance=CLEARANCE,
                ),
                actor="hub-up",
            )
        except ConflictError:
            say(f"{USERNAME} exists but {path} is missing; reset it with `hub users`")
            return DemoConsole(url=url, username=USERNAME, credentials_file=path)
        _save_credentials(path, password)
        say(f"registered console user {USERNAME}; password in {path}")
    elif _written_by_us(path):
        await _raise_demo_scope(services, say=say)
    return DemoConsole(url=url, username=USERNAME, credentials_file=path)


def _written_by_us(path: Path) -> bool:
    """Whether the credentials file is the demo officer's, as `_save_credentials` wrote it."""
    try:
        first = path.read_text().splitlines()[:1]
    except (OSError, UnicodeDecodeError):
        return False
    return first == [f"username {USERNAME}"]


async def _raise_demo_scope(services: Services, *, say: Say) -> None:
    """Give the demo officer the demo's jurisdictions and clearance where it has less (added
    to what it has, never taken away)."""
    officer = next((u for u in await list_users(services.identity) if u.username == USERNAME), None)
    if officer is None or officer.roles != ["compliance_officer"]:
        return  # not the account `hub up` made: leave it alone
    jurisdictions = sorted({*officer.jurisdictions, *JURISDICTIONS})
    clearance = max(officer.clearance, CLEARANCE)
    if (jurisdictions, clearance) == (sorted(officer.jurisdictions), officer.clearance):
        return
    await set_user_scope(
        services.identity,
        USERNAME,
        jurisdictions=jurisdictions,
        clearance=clearance,
        actor="hub-up",
    )
    say(f"{USERNAME} now sees {', '.join(jurisdictions)} at clearance {clearance}")


def _save_credentials(path: Path, password: str) -> None:
    """Write the demo login (0600, never over an existing file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"username {USERNAME}\npassword {password}\n")
