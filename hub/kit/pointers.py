"""JSON pointers (RFC 6901) with one extension: `*` stands for every key of an object or
every element of an array. Used by redaction (release) and by decision-log masking."""

from collections.abc import Iterator
from typing import Any


def split_pointer(pointer: str) -> list[str]:
    """The unescaped tokens of a pointer; "" (the whole document) and non-pointers give []."""
    if not pointer.startswith("/"):
        return []
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def escape_token(key: object) -> str:
    """One token as it appears in a pointer."""
    return str(key).replace("~", "~0").replace("/", "~1")


def find(node: Any, tokens: list[str], prefix: str = "") -> Iterator[tuple[Any, Any, str]]:
    """(parent, key, concrete pointer) of every existing value the tokens reach."""
    if not tokens:
        return
    head, rest = tokens[0], tokens[1:]
    for key in _keys(node, head):
        path = f"{prefix}/{escape_token(key)}"
        if rest:
            yield from find(node[key], rest, path)
        else:
            yield node, key, path


def _keys(node: Any, step: str) -> list[Any]:
    if isinstance(node, dict):
        return list(node) if step == "*" else ([step] if step in node else [])
    if isinstance(node, list):
        if step == "*":
            return list(range(len(node)))
        return [int(step)] if step.isdigit() and int(step) < len(node) else []
    return []
