"""Applying a `hub/release/decision` to a record: pure functions, values in, values out.

Paths are JSON pointers where `*` stands for every element of an array. Every change is
listed in the manifest (concrete path and operator, never the value), so a recipient and an
auditor can see what was withheld without seeing it.
"""

import base64
import functools
import hashlib
import hmac
import math
from collections.abc import Callable
from copy import deepcopy
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import msgspec

from hub.kit.pointers import Located, keys_at, pointer_of, pointer_tokens, walk
from hub.policy.schemas import Redaction

MASK_CHAR = "*"
DAY_SECONDS = 86_400
ZERO = timedelta(0)


class AppliedRedaction(msgspec.Struct, frozen=True, kw_only=True):
    """One change made to a released record."""

    path: str
    op: str


class Redacted(msgspec.Struct, frozen=True, kw_only=True):
    """A record ready to leave the hub and the manifest of what was changed."""

    record: dict[str, Any]
    manifest: list[AppliedRedaction]


def recipient_hash_key(master_key: bytes, recipient_id: str) -> bytes:
    """A key per recipient, so hashed values link within one recipient and never across."""
    return hmac.new(master_key, b"release-hash:" + recipient_id.encode(), hashlib.sha256).digest()


class _Step(NamedTuple):
    head: tuple[str, ...]  # tokens of the parents' pointer
    last: str  # the token under each parent
    op: str
    change: Callable[[Any], Any] | None  # None: remove
    forgets: tuple[tuple[str, ...], ...]  # walks a change here may have cut or replaced
    plain: bool  # `last` can only name an object's key (not `*`, not an array index)


class _Run(NamedTuple):
    """Consecutive steps in redaction order; `names` when they all name plain fields under
    the same parents (a profile's ten face landmarks under `/detections/*/attributes`), so
    one look per parent tells which of them are there at all."""

    steps: tuple[_Step, ...]
    names: frozenset[str] | None


class _Branch(NamedTuple):
    """What one pointer token leads to in a plan's tree: the steps that change each value it
    reaches (in redaction order), or the tree below it."""

    steps: tuple[_Step, ...]
    below: "dict[str, _Branch] | None"


class RedactionPlan(NamedTuple):
    """Redactions prepared once for many records (the items one verdict released)."""

    steps: tuple[_Step, ...]
    runs: tuple[_Run, ...]
    # The steps as one tree of tokens, walked once per record, when no step can change what
    # another one walks (see `_tree`); None otherwise.
    tree: dict[str, _Branch] | None


def plan_redactions(redactions: list[Redaction], *, hash_key: bytes) -> RedactionPlan:
    """The redactions in order, with pointers split, operators bound and, for each, the walks
    of parents its changes may invalidate (see `_overlaps`)."""
    tokens = [pointer_tokens(r.path) for r in redactions]
    heads = {t[:-1] for t in tokens if t}
    steps = tuple(
        _Step(
            head=t[:-1],
            last=t[-1],
            op=r.op,
            change=None if r.op == "remove" else _operator(r, hash_key),
            forgets=tuple(head for head in heads if _overlaps(t, head)),
            plain=t[-1] != "*" and not t[-1].isdigit(),
        )
        for r, t in zip(redactions, tokens, strict=True)
        if t
    )
    return RedactionPlan(steps=steps, runs=_runs(steps), tree=_tree(steps))


def _tree(steps: tuple[_Step, ...]) -> dict[str, _Branch] | None:
    """The steps merged into one tree of pointer tokens, or None when walking them together
    could differ from walking them one after another: a step may change a node on another's
    walk (it forgets a walk), a pointer names an array index, or one object level names
    both `*` and a key (their steps on a shared field would lose their order)."""
    if any(step.forgets for step in steps):
        return None
    root: dict[str, tuple[list[_Step], dict[str, Any]]] = {}
    for step in steps:
        if any(token.isdigit() for token in (*step.head, step.last)):
            return None
        level = root
        for token in step.head:
            level = level.setdefault(token, ([], {}))[1]
        level.setdefault(step.last, ([], {}))[0].append(step)
    return _frozen(root)


def _frozen(level: dict[str, tuple[list[_Step], dict[str, Any]]]) -> dict[str, _Branch] | None:
    if "*" in level and len(level) > 1:
        return None
    tree: dict[str, _Branch] = {}
    for token, (steps, deeper) in level.items():
        below = _frozen(deeper) if deeper else None
        if (steps and deeper) or (deeper and below is None):
            return None
        tree[token] = _Branch(steps=tuple(steps), below=below)
    return tree


def _runs(steps: tuple[_Step, ...]) -> tuple[_Run, ...]:
    """The steps cut into runs of plain steps sharing a head (every other step alone). A
    plain step's change sits below its head, so it never invalidates the walk the rest of
    its run shares (see `_overlaps`)."""
    runs: list[list[_Step]] = []
    for step in steps:
        last = runs[-1][-1] if runs else None
        if last is not None and step.plain and last.plain and step.head == last.head:
            runs[-1].append(step)
        else:
            runs.append([step])
    return tuple(
        _Run(steps=tuple(run), names=frozenset(s.last for s in run) if len(run) > 1 else None)
        for run in runs
    )


def apply_redactions(
    record: dict[str, Any], redactions: list[Redaction], *, hash_key: bytes, copy: bool = True
) -> Redacted:
    """A redacted deep copy of `record` and the manifest of changes, in redaction order.
    `copy=False` redacts `record` itself (for a caller whose record is its own, decoded for
    this one release: a deep copy was a fifth of a feed page's CPU)."""
    result = deepcopy(record) if copy else record
    return apply_plan(result, plan_redactions(redactions, hash_key=hash_key))


def apply_plan(record: dict[str, Any], plan: RedactionPlan, *, manifest: bool = True) -> Redacted:
    """Redact `record` itself by a plan; the manifest of changes, in redaction order (left
    empty with `manifest=False`, for a caller that sends no manifest: the feeds).

    Parents are walked once per distinct parent pointer (a profile's ten face landmarks
    share `/detections/*/attributes`) until a change may have cut or replaced a node on it."""
    if not manifest and plan.tree is not None:
        _apply_tree(record, plan.tree)  # one walk for every step (a feed page's usual plan)
        return Redacted(record=record, manifest=[])
    changes: list[AppliedRedaction] = []
    parents: dict[tuple[str, ...], list[Located]] = {}
    for run in plan.runs:
        if run.names is None:
            changes += _apply_step(record, run.steps[0], parents, manifest=manifest)
            continue
        head = run.steps[0].head
        walked = parents.get(head)
        if walked is None:
            walked = parents[head] = walk(record, head)
        # A step changes or removes a field, never adds one, and a run's changes sit below
        # its parents: a field none of them has now, no step of the run will find.
        names = run.names
        there = {key for p, _ in walked if type(p) is dict for key in p if key in names}
        if not there:
            continue
        for step in run.steps:
            if step.last in there:
                changes += _apply_step(record, step, parents, manifest=manifest)
    return Redacted(record=record, manifest=changes)


def _apply_tree(node: Any, tree: dict[str, _Branch]) -> None:
    """Every step of a plan's tree on the values below `node`, in one walk."""
    if isinstance(node, dict):
        for name, branch in tree.items():
            if name == "*":
                for key in list(node):
                    _reach(node, key, branch)
            elif name in node:
                _reach(node, name, branch)
    elif isinstance(node, list) and "*" in tree:
        branch = tree["*"]
        for index in range(len(node)):
            _reach(node, index, branch)


def _reach(parent: Any, key: Any, branch: _Branch) -> None:
    if branch.below is not None:
        _apply_tree(parent[key], branch.below)
        return
    for step in branch.steps:
        if step.change is None:
            _remove(parent, key)
            if isinstance(parent, dict):
                return  # gone: later steps on it find nothing, as walked one by one
        else:
            parent[key] = step.change(parent[key])


def _apply_step(
    record: dict[str, Any],
    step: _Step,
    parents: dict[tuple[str, ...], list[Located]],
    *,
    manifest: bool,
) -> list[AppliedRedaction]:
    """One step on a record, reusing (and forgetting) parents' walks; its manifest lines."""
    walked = parents.get(step.head)
    if walked is None:
        walked = parents[step.head] = walk(record, step.head)
    last = step.last
    found = (
        [(parent, last, keys) for parent, keys in walked if type(parent) is dict and last in parent]
        if step.plain
        else [(parent, key, keys) for parent, keys in walked for key in keys_at(parent, last)]
    )
    if not found:
        return []
    for parent, key, _ in found:
        if step.change is None:
            _remove(parent, key)
        else:
            parent[key] = step.change(parent[key])
    for head in step.forgets:
        parents.pop(head, None)
    if not manifest:
        return []
    return [AppliedRedaction(path=pointer_of((*keys, key)), op=step.op) for _, key, keys in found]


def _overlaps(changed: tuple[str, ...], head: tuple[str, ...]) -> bool:
    """Whether changing a value at `changed` may replace a node on a walk of `head`: only a
    node at most as deep as the walk, on a path both pointers can name (`*` names anything;
    an array index is compared as text nowhere, so any index may be any other)."""
    return len(changed) <= len(head) and all(
        a == b or "*" in (a, b) or a.isdigit() or b.isdigit()
        for a, b in zip(changed, head, strict=False)
    )


def _remove(parent: Any, key: Any) -> None:
    # Array elements become null rather than shifting later indexes under other pointers.
    if isinstance(parent, list):
        parent[key] = None
    else:
        del parent[key]


def _operator(redaction: Redaction, hash_key: bytes) -> Callable[[Any], Any]:
    if redaction.op == "mask":
        return lambda v: _mask(v, keep_last=redaction.params.get("keep_last", 0))
    if redaction.op == "hash":
        return lambda v: _hash(v, hash_key)
    if redaction.op == "generalize":
        return lambda v: _generalize(v, redaction.params)
    return lambda v: v


def _mask(value: Any, *, keep_last: int) -> Any:
    text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
    keep = max(0, min(keep_last, len(text) // 2))  # never reveal more than half
    return MASK_CHAR * (len(text) - keep) + (text[len(text) - keep :] if keep else "")


def _hash(value: Any, key: bytes) -> str:
    canonical = value.encode() if isinstance(value, str) else msgspec.json.encode(value)
    digest = hmac.new(key, canonical, hashlib.sha256).digest()
    return "hmac-sha256:" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _generalize(value: Any, params: dict[str, int]) -> Any:
    if "time_seconds" in params and isinstance(value, str):
        return _round_time(value, params["time_seconds"])
    if "decimals" in params and isinstance(value, int | float) and not isinstance(value, bool):
        factor = 10 ** params["decimals"]
        return math.floor(value * factor) / factor
    return None  # a value we cannot generalize is withheld rather than released as is


def _round_time(value: str, seconds: int) -> str | None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    step = max(seconds, 1)
    if DAY_SECONDS % step == 0 and parsed.utcoffset() == ZERO:
        # The usual case (UTC capture times, a step that divides a day): the day's boundaries
        # are the epoch's, so the floor is taken within the day, and the text of the clock
        # is looked up, not formatted (datetime arithmetic was a third of a feed item's
        # redaction).
        of_day = parsed.hour * 3600 + parsed.minute * 60 + parsed.second
        return parsed.date().isoformat() + _clock_text(of_day - of_day % step)
    moment = parsed.astimezone(UTC)
    floored = math.floor(moment.timestamp() / step) * step
    return datetime.fromtimestamp(floored, tz=UTC).isoformat().replace("+00:00", "Z")


@functools.lru_cache(maxsize=4096)
def _clock_text(second_of_day: int) -> str:
    hour, rest = divmod(second_of_day, 3600)
    return f"T{hour:02d}:{rest // 60:02d}:{rest % 60:02d}Z"
