"""Static bearer tokens: hashed at rest, shown once, re-read when the file changes."""

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.identity import tokens as tokens_module
from hub.identity.tokens import (
    TokenEntry,
    TokenStore,
    append_token,
    new_token,
    read_tokens,
    token_hash,
)
from hub.kit.errors import AuthenticationError

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def entry(token: str, **overrides: object) -> TokenEntry:
    fields: dict[str, object] = {
        "sha256": token_hash(token),
        "subject": "ada",
        "roles": ["operator"],
    }
    fields.update(overrides)
    return TokenEntry(**fields)


def test_tokens_are_stored_only_as_hashes(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    token = new_token()
    append_token(
        path,
        entry(
            token,
            agency="police-north",
            jurisdictions=["north"],
            clearance=3,
            purpose="investigation",
        ),
    )
    assert token not in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    (parsed,) = read_tokens(path).token
    assert (parsed.agency, parsed.jurisdictions, parsed.clearance) == ("police-north", ["north"], 3)


def test_known_token_gives_its_subject_unknown_and_expired_do_not(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    good, old = new_token(), new_token()
    append_token(path, entry(good, roles=["compliance_officer"]))
    append_token(path, entry(old, subject="bob", expires_at=NOW - timedelta(seconds=1)))
    store = TokenStore(path)
    subject = store.subject_for(good, now=NOW)
    assert (subject.id, subject.roles, subject.kind) == ("ada", ["compliance_officer"], "user")
    with pytest.raises(AuthenticationError) as unknown:
        store.subject_for(new_token(), now=NOW)
    assert unknown.value.code == "token_invalid"
    with pytest.raises(AuthenticationError) as expired:
        store.subject_for(old, now=NOW)
    assert expired.value.code == "token_expired"


def test_a_token_removed_from_the_file_stops_working(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tokens_module, "RELOAD_SECONDS", 0.0)
    path = tmp_path / "tokens.toml"
    token = new_token()
    append_token(path, entry(token))
    store = TokenStore(path)
    assert store.subject_for(token, now=NOW).id == "ada"
    path.write_text("")
    os.utime(path, (1, 1))  # a different mtime, whatever the clock's resolution
    with pytest.raises(AuthenticationError):
        store.subject_for(token, now=NOW)
