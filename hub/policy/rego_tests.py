"""Running a bundle's Rego unit tests (`test_*` rules) in-process with rego-cpp (regopy).

A test passes only when its rule is exactly `true`: false, undefined, any other value or an
evaluation error fail it. Sources that do not compile fail every test with the compiler's
message. All tests are compiled once, as entrypoints of one rego-cpp bundle: rego-cpp
recompiles everything for each ad-hoc query, which costs about a second per test.

rego-cpp 1.5.2 aborts the whole process on a few constructs (see `policies/README.md`), so a
caller that runs bundles it does not trust should run this in a child process.
"""

import errno
import os
import re
import time
from pathlib import Path
from typing import Any

import msgspec
from regopy import Interpreter, LogLevel, NodeKind, RegoError, rego_shared

from hub.policy.engines.rego import compiler_message

MAX_FILE_BYTES = 1024 * 1024
DATA_FILE = "data.json"
_PACKAGE = re.compile(r"^package\s+([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*(?:#.*)?$", re.MULTILINE)
# A rule head at the start of a line; `test_x(` is a function, which OPA does not run.
_TEST_RULE = re.compile(r"^(test_\w*)\b(?!\s*\()", re.MULTILINE)


class BundleFileError(ValueError):
    """A bundle file that will not be read: a symlink, over `MAX_FILE_BYTES`, or not UTF-8."""


class TestResult(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of one test rule, named as its reference (`data.pkg.test_x`)."""

    __test__ = False  # not a pytest test class, whatever its name says

    name: str
    passed: bool
    error: str | None = None
    duration_us: int = 0

    @property
    def message(self) -> str:
        """Why the test failed ("" when it passed)."""
        return self.error or ""


class TestReport(msgspec.Struct, frozen=True, kw_only=True):
    """Every test's outcome, in discovery order; `error` when the sources did not compile."""

    __test__ = False

    results: list[TestResult]
    passed: int
    failed: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when everything compiled and no test failed."""
        return self.error is None and self.failed == 0


def discover_tests(sources: dict[str, str]) -> list[str]:
    """The `data.<package>.test_*` references of every test rule, in source order, once each."""
    names: dict[str, None] = {}
    for text in sources.values():
        package = _PACKAGE.search(text)
        if package is None:
            continue
        for rule in _TEST_RULE.finditer(text):
            names[f"data.{package.group(1)}.{rule.group(1)}"] = None
    return list(names)


def run_tests(sources: dict[str, str], data_json: str) -> TestReport:
    """Compile `sources` with `data_json` and evaluate every test rule they define."""
    names = discover_tests(sources)
    interpreter = Interpreter()
    interpreter.log_level = LogLevel.NONE  # rego-cpp prints compiler errors to stdout
    try:
        bundle = _compile(interpreter, sources, data_json, names)
    except RegoError as exc:
        message = compiler_message(str(exc), sources)
        failed = [TestResult(name=name, passed=False, error=message) for name in names]
        return TestReport(results=failed, passed=0, failed=len(failed), error=message)
    results = [_run_one(interpreter, bundle, name) for name in names]
    passed = sum(result.passed for result in results)
    return TestReport(results=results, passed=passed, failed=len(results) - passed)


def _compile(interpreter: Any, sources: dict[str, str], data_json: str, names: list[str]) -> Any:
    """Load modules and data and build one bundle with every test as an entrypoint."""
    for path, text in sources.items():
        interpreter.add_module(path, text)
    interpreter.add_data_json(data_json)
    # With no tests there is no entrypoint; a trivial query still compiles every module.
    query = None if names else "true"
    bundle = interpreter.build(query, [_entrypoint(name) for name in names])
    if not bundle.ok():
        raise RegoError("; ".join(_error_messages(bundle.node())) or "compilation failed")
    return bundle


def _entrypoint(name: str) -> str:
    """`data.hub.authz_test.test_x` as rego-cpp's entrypoint `hub/authz_test/test_x`."""
    return name.removeprefix("data.").replace(".", "/")


def _run_one(interpreter: Any, bundle: Any, name: str) -> TestResult:
    """Evaluate one test rule and time it."""
    started = time.perf_counter_ns()
    try:
        output = interpreter.query_bundle_entrypoint(bundle, _entrypoint(name))
        error = _failure(output)
    except (RegoError, ValueError) as exc:  # ValueError: output that is not valid JSON
        error = f"evaluation failed: {str(exc).strip() or type(exc).__name__}"
    elapsed = (time.perf_counter_ns() - started) // 1000
    return TestResult(name=name, passed=error is None, error=error, duration_us=elapsed)


def _failure(output: Any) -> str | None:
    """None when the output is exactly `true`, otherwise what it was instead."""
    if not output.ok():
        return "; ".join(_error_messages(output.node())) or "evaluation failed"
    text = str(output)
    if text == "undefined":
        return "undefined (a condition of the test did not hold)"
    value = msgspec.json.decode(text.encode())
    expressions = value.get("expressions") if isinstance(value, dict) else None
    if expressions is not None and len(expressions) == 1 and expressions[0] is True:
        return None
    return f"expected true, got {text}"


def _error_messages(node: Any) -> list[str]:
    """The messages of a rego-cpp error sequence (an output's or a bundle's root node)."""
    if node.kind != NodeKind.ErrorSeq:
        return []
    messages: list[str] = []
    for i in range(len(node)):
        error = node.at(i)
        for j in range(len(error)):
            part = error.at(j)
            if part.kind == NodeKind.ErrorMessage:
                # regopy gives no public accessor for an error node's text.
                messages.append(rego_shared.rego_node_value(part._impl))
    return messages


def load_bundle_dir(path: Path | str) -> tuple[dict[str, str], str]:
    """A bundle folder's `.rego` sources by relative path and root `data.json` ("{}" if none)."""
    root = Path(path)
    if root.is_symlink() or not root.is_dir():
        raise BundleFileError(f"{root} is not a bundle folder (or is a symlink)")
    sources: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            entry = Path(folder) / name
            if entry.is_symlink():
                raise BundleFileError(f"{entry.relative_to(root)} is a symlink")
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".rego"):
                entry = Path(folder) / name
                sources[entry.relative_to(root).as_posix()] = _read_text(entry)
    data = root / DATA_FILE
    return sources, _read_text(data) if data.is_file() else "{}"


def _read_text(path: Path) -> str:
    """A file's UTF-8 text; refuses symlinks (even swapped in after the walk) and big files."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BundleFileError(f"{path.name} is a symlink") from None
        raise
    with os.fdopen(handle, "rb") as file:
        raw = file.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise BundleFileError(f"{path.name} is larger than {MAX_FILE_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BundleFileError(f"{path.name} is not UTF-8 text") from None
