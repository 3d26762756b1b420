"""Running a bundle's Rego unit tests (`test_*` rules) in-process with rego-cpp (regopy).

A test passes only when its rule is exactly `true`: false, undefined, any other value or an
evaluation error fail it. Sources that do not compile fail every test with the compiler's
message. All tests are compiled once, as entrypoints of one rego-cpp bundle: rego-cpp
recompiles everything for each ad-hoc query, which costs about a second per test.

rego-cpp 1.5.2 aborts the whole process on a few constructs (see `policies/README.md`), so a
caller that runs bundles it does not trust should run this in a child process.
"""

import re
import time
from typing import Any

import msgspec
from regopy import Interpreter, LogLevel, RegoError

from hub.policy.engines.rego import compiler_message, error_messages

_PACKAGE = re.compile(r"^package\s+([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*(?:#.*)?$", re.MULTILINE)
# A rule head at the start of a line; `test_x(` is a function, which OPA does not run.
_TEST_RULE = re.compile(r"^(test_\w*)\b(?!\s*\()", re.MULTILINE)


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
        raise RegoError("; ".join(error_messages(bundle.node())) or "compilation failed")
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
        return "; ".join(error_messages(output.node())) or "evaluation failed"
    text = str(output)
    if text == "undefined":
        return "undefined (a condition of the test did not hold)"
    value = msgspec.json.decode(text.encode())
    expressions = value.get("expressions") if isinstance(value, dict) else None
    if expressions is not None and len(expressions) == 1 and expressions[0] is True:
        return None
    return f"expected true, got {text}"
