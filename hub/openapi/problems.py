"""Which problem codes each HTTP status can carry, read from the hub's own source.

The codes are the `code` class attributes of the `HubError` tree plus every literal `code=`
passed where an error is raised (or a problem sent), found once by walking the syntax tree
of `hub/`. The document lists them per status, so a client sees every stable `type` it can
meet without the list drifting from the code.
"""

import ast
import threading
from collections import defaultdict
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from hub.kit.errors import HubError
from hub.kit.problems import _LITESTAR_CODES

# Callables whose first argument is the code of the error they become (not HubErrors
# themselves): signature failures and the access-token error helper both end as 401s.
_WRAPPED = {"SignatureError": 401, "token_error": 401}
_SOURCE = Path(__file__).resolve().parent.parent


def _error_classes() -> dict[str, type[HubError]]:
    """Every HubError subclass known once the app is imported, by class name."""
    found: dict[str, type[HubError]] = {}
    pending: list[type[HubError]] = [HubError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.__name__, cls)
        pending.extend(cls.__subclasses__())
    return found


def _keyword(call: ast.Call, name: str) -> object:
    return next(
        (
            k.value.value
            for k in call.keywords
            if k.arg == name and isinstance(k.value, ast.Constant)
        ),
        None,
    )


def _callee(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else ""


def _first_text(call: ast.Call) -> str | None:
    first = call.args[0] if call.args else None
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def _code_of(call: ast.Call, classes: dict[str, type[HubError]]) -> tuple[int, str] | None:
    """(status, code) of one call that raises or answers with a literal code, else None."""
    name, code, status = _callee(call), _keyword(call, "code"), _keyword(call, "status")
    if name == "OAuthError" and code is None and _first_text(call):
        code = f"oauth_{_first_text(call)}"
    if name in _WRAPPED and _first_text(call):
        return _WRAPPED[name], str(_first_text(call))
    if not isinstance(code, str):
        return None
    if isinstance(status, int):
        return status, code
    cls = classes.get(name)
    return (cls.status, code) if cls is not None else None


def _calls(root: Path) -> Iterator[ast.Call]:
    """Calls in the hub's modules that may name a code (only those files are parsed)."""
    hints = ("code=", "OAuthError(", *(f"{name}(" for name in _WRAPPED))
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if "demo_agency" in path.parts or not any(hint in text for hint in hints):
            continue
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Call):
                yield node


def warm_codes() -> None:
    """Read the codes in a background thread now, so the first request for the document
    does not parse source files on the event loop (the answer is cached per process)."""
    threading.Thread(target=codes_by_status, name="openapi-codes", daemon=True).start()


@cache
def codes_by_status() -> dict[int, tuple[str, ...]]:
    """Every stable problem code the hub can answer with, grouped by HTTP status."""
    classes = _error_classes()
    found: dict[int, set[str]] = defaultdict(set)
    for cls in classes.values():
        found[cls.status].add(cls.code)
    for status, code in _LITESTAR_CODES.items():
        found[status].add(code)
    found[400].add("validation_failed")  # Litestar's parameter validation
    for call in _calls(_SOURCE):
        pair = _code_of(call, classes)
        if pair is not None:
            found[pair[0]].add(pair[1])
    return {status: tuple(sorted(codes)) for status, codes in sorted(found.items())}
