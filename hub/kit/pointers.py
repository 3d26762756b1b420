"""JSON pointers (RFC 6901) with one extension: `*` stands for every key of an object or
every element of an array. Used by redaction (release) and by decision-log masking."""

from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any

Located = tuple[Any, tuple[Any, ...]]  # (a node, the keys that lead to it from the root)


def split_pointer(pointer: str) -> list[str]:
    """The unescaped tokens of a pointer; "" (the whole document) and non-pointers give []."""
    return list(_split(pointer))


@lru_cache(maxsize=4096)
def _split(pointer: str) -> tuple[str, ...]:
    # A policy names a few dozen pointers, used on every release and decision record.
    if not pointer.startswith("/"):
        return ()
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/"))


def escape_token(key: object) -> str:
    """One token as it appears in a pointer."""
    text = str(key)
    if "~" in text or "/" in text:
        return text.replace("~", "~0").replace("/", "~1")
    return text


def find(node: Any, tokens: Sequence[str], prefix: str = "") -> Iterator[tuple[Any, Any, str]]:
    """(parent, key, concrete pointer) of every existing value the tokens reach, in document
    order (level by level: every match sits at the same depth, so this is depth-first order
    too, without a generator per level)."""
    if not tokens:
        return
    frontier: list[tuple[Any, str]] = [(node, prefix)]
    for step in tokens[:-1]:
        frontier = [
            (current[key], f"{path}/{escape_token(key)}")
            for current, path in frontier
            for key in _keys(current, step)
        ]
    last = tokens[-1]
    for current, path in frontier:
        for key in _keys(current, last):
            yield current, key, f"{path}/{escape_token(key)}"


def pointer_tokens(pointer: str) -> tuple[str, ...]:
    """`split_pointer` without the copy (the cached tuple itself)."""
    return _split(pointer)


def walk(node: Any, tokens: Sequence[str]) -> list[Located]:
    """Every existing value the tokens reach, with the keys that lead to it, in document
    order; paths are left as keys, so a walk that reaches nothing costs no strings."""
    frontier: list[Located] = [(node, ())]
    for step in tokens:
        frontier = [
            (current[key], (*keys, key))
            for current, keys in frontier
            for key in _keys(current, step)
        ]
        if not frontier:
            break
    return frontier


def keys_at(node: Any, step: str) -> list[Any]:
    """The keys (indexes) of `node` that one token reaches."""
    return _keys(node, step)


def pointer_of(keys: Iterable[Any]) -> str:
    """The concrete pointer of a path of keys."""
    return "".join("/" + escape_token(key) for key in keys)


def _keys(node: Any, step: str) -> list[Any]:
    if isinstance(node, dict):
        return list(node) if step == "*" else ([step] if step in node else [])
    if isinstance(node, list):
        if step == "*":
            return list(range(len(node)))
        return [int(step)] if step.isdigit() and int(step) < len(node) else []
    return []
