"""Agency secrets at rest: the secret fields of `agency.config` sealed under the hub's keys.

Each adapter names its secret fields (`secret_paths`: `oauth2.client_secret`, `secrets[]` for
every item of a list). Before a configuration is stored, each such string becomes a sealed
node `{"$sealed": base64(nonce + AES-256-GCM), "$key": master key id}` under the current PII
master key (the hub's key ring, rotated with HUB_PII_MASTER_KEY_ID); the agency id and the
field's path are bound as associated data, so a sealed value copied to another agency or
field does not open. Configurations are opened only where an adapter parses them to send.
"""

import base64
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adapters.base import ConfigError
from hub.retention import KeyRing

SEALED = "$sealed"
KEY = "$key"
_NONCE = 12

KeySource = Callable[[], KeyRing]


class SecretSealError(ConfigError):
    """A sealed field did not open (unknown master key id, or tampered / moved value); to
    delivery it is a configuration that no longer parses."""


def is_sealed(node: object) -> bool:
    """True for a sealed node as `seal_config` writes it."""
    return isinstance(node, dict) and set(node) == {SEALED, KEY}


def seal_config(
    config: Mapping[str, Any], *, paths: Iterable[str], keys: KeyRing, agency_id: UUID
) -> dict[str, Any]:
    """A copy of `config` with every clear string at `paths` sealed under the current key,
    and every sealed node already there re-sealed under it when an older key sealed it."""
    wanted = set(paths) | set(sealed_paths(config))
    opened = open_config(config, keys=keys, agency_id=agency_id)
    sealed: dict[str, Any] = _map(
        opened, "", lambda path, node: _seal_at(path, node, wanted, keys, agency_id)
    )
    return sealed


def open_config(config: Mapping[str, Any], *, keys: KeyRing, agency_id: UUID) -> dict[str, Any]:
    """A copy of `config` with every sealed node replaced by its clear text."""
    opened: dict[str, Any] = _map(
        config,
        "",
        lambda path, node: _open(node, keys, _aad(agency_id, path)) if is_sealed(node) else node,
    )
    return opened


def sealed_paths(config: Mapping[str, Any]) -> list[str]:
    """The paths of the sealed nodes in `config`."""
    return [path for path, node in _walk(config, "") if is_sealed(node)]


def clear_paths(config: Mapping[str, Any], paths: Iterable[str]) -> list[str]:
    """The paths among `paths` whose value is still a clear string."""
    wanted = set(paths)
    return [path for path, node in _walk(config, "") if path in wanted and isinstance(node, str)]


def sealed_by_old_key(config: Mapping[str, Any], *, current_id: str) -> bool:
    """True when some node of `config` was sealed by a key other than `current_id`."""
    return any(is_sealed(node) and node[KEY] != current_id for _, node in _walk(config, ""))


def _seal_at(path: str, node: Any, wanted: set[str], keys: KeyRing, agency_id: UUID) -> Any:
    if path not in wanted or not isinstance(node, str):
        return node
    nonce = os.urandom(_NONCE)
    cipher = AESGCM(keys.masters[keys.current_id])
    sealed = nonce + cipher.encrypt(nonce, node.encode(), _aad(agency_id, path))
    return {SEALED: base64.b64encode(sealed).decode(), KEY: keys.current_id}


def _open(node: dict[str, str], keys: KeyRing, aad: bytes) -> str:
    master = keys.masters.get(node[KEY])
    if master is None:
        raise SecretSealError(f"agency secret sealed by unknown master key {node[KEY]!r}")
    try:
        data = base64.b64decode(node[SEALED], validate=True)
        return AESGCM(master).decrypt(data[:_NONCE], data[_NONCE:], aad).decode()
    except (InvalidTag, ValueError):
        raise SecretSealError("an agency secret does not open under its master key") from None


def _aad(agency_id: UUID, path: str) -> bytes:
    return f"agency-config:{agency_id}:{path}".encode()


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _walk(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every (path, value) below `node`; list items share the path `name[]`."""
    if is_sealed(node):
        yield path, node
    elif isinstance(node, dict):
        for name, value in node.items():
            yield from _walk(value, _child(path, name))
    elif isinstance(node, list | tuple):
        for value in node:
            yield from _walk(value, f"{path}[]")
    else:
        yield path, node


def _map(node: Any, path: str, leaf: Callable[[str, Any], Any]) -> Any:
    """`node` rebuilt with `leaf(path, value)` applied to every leaf and sealed node."""
    if isinstance(node, dict) and not is_sealed(node):
        return {name: _map(value, _child(path, name), leaf) for name, value in node.items()}
    if isinstance(node, list | tuple):
        return [_map(value, f"{path}[]", leaf) for value in node]
    return leaf(path, node)
