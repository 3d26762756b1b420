"""rego-cpp (regopy): the bundle's Rego compiled once at load, evaluated in-process.

One interpreter holds the compiled bundle and the current input, so evaluations are
serialised by a lock (an evaluation is tens to a few hundred microseconds; the hub calls it
from its event loop, where the lock is never contended).

Input goes in one of two ways. The fast way builds it with rego-cpp's C input calls
(`regoInput*`, ~50 µs for an authz input); regopy's own `Input` makes the same calls through
Python wrappers (~130 µs) and passes strings unescaped, which rego-cpp mis-reads when they
hold a quote, backslash or control character. The exact way parses the input JSON as a Rego
term (~250 µs). Exact is used when the fast way would change the input: a float that
rego-cpp's C call would round to six decimals, an integer beyond 64 bits; and for bundles
that call `json.marshal`/`yaml.marshal`, which rego-cpp cannot apply to C-built objects.

This reaches below regopy's public API (its `rego_shared` module and objects' `_impl`
handles); `tests/hub/policy/test_engines.py` pins the behaviour, so a regopy upgrade that
moves them fails there first.
"""

import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from regopy import Input, Interpreter, LogLevel, NodeKind, RegoError, rego_shared

from hub.policy.errors import PolicyEvaluationError, PolicyLoadError

# rego-cpp's C functions, with the argument types regopy declared on import.
_C = rego_shared.rego
_TOKEN = re.compile(r"\((error|errormsg) (\d+):")
_LOCATION = re.compile(r"\|(\d+)\|")
_MARSHAL = re.compile(r"\b(json|yaml)\.marshal")
_INT64 = range(-(2**63), 2**63)


class RegoEngine:
    """A bundle's Rego modules and data compiled by rego-cpp for the given entrypoints."""

    def __init__(
        self,
        sources: Mapping[str, str],
        data_json: str,
        *,
        revision: str,
        entrypoints: Sequence[str],
        exact_input: bool = False,
    ) -> None:
        """Compile now; `exact_input` always parses input JSON (slower, see the module)."""
        if not entrypoints:
            raise PolicyLoadError("no entrypoints to compile")
        self._revision = revision
        self._entrypoints = frozenset(entrypoints)
        self._lock = threading.Lock()
        self._interpreter = Interpreter()
        # rego-cpp prints compiler errors to stdout by default; they are raised instead.
        self._interpreter.log_level = LogLevel.NONE
        self._bundle = _compile(self._interpreter, sources, data_json, list(entrypoints))
        self._exact_only = exact_input or any(_MARSHAL.search(t) for t in sources.values())

    @property
    def revision(self) -> str:
        """The bundle revision from its `.manifest`."""
        return self._revision

    @property
    def kind(self) -> str:
        """Which engine this is, for metrics and status pages."""
        return "rego"

    @property
    def entrypoints(self) -> frozenset[str]:
        """The entrypoints compiled into this engine."""
        return self._entrypoints

    def evaluate(self, entrypoint: str, input_json: bytes) -> bytes:
        """The entrypoint's value for this input, as JSON; `PolicyEvaluationError` when
        evaluation fails or the value is undefined."""
        if entrypoint not in self._entrypoints:
            raise PolicyEvaluationError(f"{entrypoint} is not an entrypoint of this engine")
        try:
            value = msgspec.json.decode(input_json)
        except msgspec.DecodeError:
            raise PolicyEvaluationError("input is not valid JSON") from None
        with self._lock:
            try:
                self._set_input(value, input_json)
                output = self._interpreter.query_bundle_entrypoint(self._bundle, entrypoint)
            except (RegoError, RecursionError, ValueError) as exc:
                # ValueError: regopy could not parse rego-cpp's output as JSON.
                raise PolicyEvaluationError(f"{entrypoint}: {_first_line(exc)}") from None
        return _value_of(output, entrypoint)

    def _set_input(self, value: Any, input_json: bytes) -> None:
        if not self._exact_only:
            try:
                self._interpreter.set_input(_CInput(value))
                return
            except _NeedsExact:
                pass
        self._interpreter.set_input_term(input_json.decode())

    def close(self) -> None:
        """Nothing to release early: the interpreter and bundle are freed with the engine."""


def _compile(
    interpreter: Any, sources: Mapping[str, str], data_json: str, entrypoints: list[str]
) -> Any:
    try:
        for name, text in sources.items():
            interpreter.add_module(name, text)
        interpreter.add_data_json(data_json)
        bundle = interpreter.build(None, entrypoints)
    except RegoError as exc:
        raise PolicyLoadError(compiler_message(str(exc), sources)) from None
    if not bundle.ok():
        raise PolicyLoadError("; ".join(error_messages(bundle.node())) or "compilation failed")
    return bundle


class _NeedsExact(Exception):
    """The C input calls would change this value; parse the JSON instead."""


class _CInput(Input):  # type: ignore[misc]
    """A regopy `Input` built in one tight pass over rego-cpp's C input calls."""

    def __init__(self, value: Any) -> None:
        self._impl = _C.regoNewInput()  # set first: Input.__del__ frees it on any failure
        if _push(self._impl, value):
            raise PolicyEvaluationError("rego-cpp refused the input")


def _push(handle: int, value: Any) -> int:
    """Push one JSON value onto the input stack; non-zero when rego-cpp reported an error."""
    code = 0
    if isinstance(value, dict):
        for key, item in value.items():
            code |= _C.regoInputString(handle, _escaped(key))
            code |= _push(handle, item) | _C.regoInputObjectItem(handle)
        return code | int(_C.regoInputObject(handle, len(value)))
    if isinstance(value, list):
        for item in value:
            code |= _push(handle, item)
        return code | int(_C.regoInputArray(handle, len(value)))
    return _push_scalar(handle, value)


def _push_scalar(handle: int, value: Any) -> int:
    if isinstance(value, str):
        return int(_C.regoInputString(handle, _escaped(value)))
    if value is True or value is False:
        return int(_C.regoInputBoolean(handle, value))
    if isinstance(value, int):
        if value not in _INT64:
            raise _NeedsExact
        return int(_C.regoInputInt(handle, value))
    if isinstance(value, float):
        if float(f"{value:f}") != value:  # the C call prints it with "%f"
            raise _NeedsExact
        return int(_C.regoInputFloat(handle, value))
    return int(_C.regoInputNull(handle))


def _escaped(text: str) -> bytes:
    """A string as its JSON-escaped text without quotes: how rego-cpp holds the strings it
    parses, so input compares equal to the policy's literals and data."""
    return msgspec.json.encode(text)[1:-1]


def _value_of(output: Any, entrypoint: str) -> bytes:
    """The entrypoint's value as JSON, from regopy's parsed output."""
    if not output.ok():
        detail = "; ".join(error_messages(output.node())) or "evaluation failed"
        raise PolicyEvaluationError(f"{entrypoint}: {detail}")
    if len(output) != 1 or len(output[0].expressions) != 1:
        raise PolicyEvaluationError(f"{entrypoint} has no single value for this input")
    return msgspec.json.encode(output[0].expressions[0])


def error_messages(node: Any) -> list[str]:
    """The messages of an rego-cpp error sequence (a bundle's or an output's root node)."""
    if node.kind != NodeKind.ErrorSeq:
        return []
    messages: list[str] = []
    for i in range(len(node)):
        error = node.at(i)
        for j in range(len(error)):
            part = error.at(j)
            if part.kind == NodeKind.ErrorMessage:
                messages.append(rego_shared.rego_node_value(part._impl))
    return messages


def compiler_message(text: str, sources: Mapping[str, str]) -> str:
    """rego-cpp's error sequence as `file:line:col: message` lines joined by '; '.

    The sequence is an S-expression whose strings are length-prefixed (`(errormsg 24:...)`)
    and whose locations are byte offsets (`(error 6:x.rego|29|2`).
    """
    found: list[str] = []
    where = ""
    for match in _TOKEN.finditer(text):
        size, start = int(match.group(2)), match.end()
        value = text[start : start + size]
        if match.group(1) == "error":
            offset = _LOCATION.match(text, start + size)
            where = _position(value, int(offset.group(1)), sources) if offset else value
        else:
            found.append(f"{where}: {value}" if where else value)
            where = ""
    return "; ".join(dict.fromkeys(found)) or text.strip()


def _position(name: str, offset: int, sources: Mapping[str, str]) -> str:
    source = sources.get(name)
    if source is None:
        return name
    raw = source.encode()
    line = raw.count(b"\n", 0, offset) + 1
    column = offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
    return f"{name}:{line}:{column}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
