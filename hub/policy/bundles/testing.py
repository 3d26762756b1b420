"""The pre-activation check of a bundle: it compiles for every entrypoint and its tests pass.

The Rego test runner (`hub.policy.rego_tests`) runs every `test_*` rule of the bundle's
modules against its data; its report becomes a `RegoTestSummary` stored with the bundle.
Compiling the engine too catches what tests may not reach (a missing entrypoint, a broken
`policy.wasm`), so an uploaded bundle is one every process will be able to load.

rego-cpp aborts its whole process on a few constructs, so an upload is checked in a child
process (`check_isolated`): a bundle that crashes or hangs the compiler is rejected, and
the API process that received it carries on.
"""

import asyncio
import contextlib
import sys

import msgspec

from hub.policy.bundle import LoadedBundle, load_bundle_files
from hub.policy.bundles.archive import BundleFiles
from hub.policy.bundles.schemas import RegoTestRead, RegoTestSummary
from hub.policy.engines import load_engine
from hub.policy.errors import PolicyLoadError
from hub.policy.rego_tests import run_tests

CHILD_MODULE = "hub.policy.bundles.isolated"
CHECK_TIMEOUT_SECONDS = 120.0


def check_bundle(bundle: LoadedBundle) -> RegoTestSummary:
    """Run the bundle's Rego tests, then compile its engine (in this process)."""
    summary = run_bundle_tests(bundle)
    if summary.error is None and not summary.failed:
        try:
            engine = load_engine(bundle)
        except PolicyLoadError as exc:
            return msgspec.structs.replace(summary, error=exc.detail)
        close = getattr(engine, "close", None)
        if callable(close):
            close()
    return summary


def check_files(files: BundleFiles) -> RegoTestSummary:
    """Load a bundle's files and check it; a bundle that will not load is reported, not
    raised."""
    try:
        return check_bundle(load_bundle_files(files))
    except PolicyLoadError as exc:
        return RegoTestSummary(passed=0, failed=0, error=exc.detail)


def run_bundle_tests(bundle: LoadedBundle) -> RegoTestSummary:
    """Every `test_*` rule of the bundle, run against its data."""
    report = run_tests({**bundle.sources, **bundle.tests}, bundle.data_json)
    tests = [
        RegoTestRead(name=result.name, passed=result.passed, message=result.message or None)
        for result in report.results
    ]
    return RegoTestSummary(
        passed=report.passed,
        failed=report.failed,
        failing=[t.name for t in tests if not t.passed],
        tests=tests,
        error=report.error,
    )


async def check_isolated(
    files: BundleFiles, *, limit_seconds: float = CHECK_TIMEOUT_SECONDS
) -> RegoTestSummary:
    """`check_files` in a child process; a crash or a timeout is a failed check."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        CHILD_MODULE,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(
            child.communicate(msgspec.msgpack.encode(files)), limit_seconds
        )
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await child.wait()
        return RegoTestSummary(
            passed=0, failed=0, error=f"checking took over {limit_seconds:.0f} s"
        )
    if child.returncode != 0:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        return RegoTestSummary(
            passed=0,
            failed=0,
            error=f"the policy compiler crashed on this bundle (exit {child.returncode}) "
            f"{tail[0][:300]}".strip(),
        )
    try:
        return msgspec.json.decode(out, type=RegoTestSummary)
    except msgspec.DecodeError:
        return RegoTestSummary(passed=0, failed=0, error="the bundle check gave no report")
