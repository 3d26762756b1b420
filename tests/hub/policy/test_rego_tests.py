"""The Rego test runner's edge cases: discovery, what counts as a pass, compile and
evaluation errors, missing data; and the bundle-folder reader's refusals."""

from pathlib import Path

import msgspec
import pytest

from hub.policy import rego_tests
from hub.policy.bundle import MAX_FILE_BYTES, load_bundle_dir
from hub.policy.errors import PolicyLoadError

HEADER = "package demo_test\n\nimport rego.v1\n\n"


def run(body: str, data_json: str = "{}") -> dict[str, rego_tests.TestResult]:
    """Run one module's tests; results by bare test name."""
    report = rego_tests.run_tests({"demo_test.rego": HEADER + body}, data_json)
    return {r.name.rsplit(".", 1)[1]: r for r in report.results}


def test_discovery_finds_rules_per_package_once_in_order() -> None:
    sources = {
        "b.rego": "package hub.b_test\n\ntest_z if true\n\ntest_a if true\n\ntest_z if 1 == 1\n",
        "a.rego": "package a.x\n\n# test_commented if true\ntest_helper(x) := x\n\ntest_one := 1\n",
        "none.rego": "test_orphan if true\n",
    }
    assert rego_tests.discover_tests(sources) == [
        "data.hub.b_test.test_z",
        "data.hub.b_test.test_a",
        "data.a.x.test_one",
    ]


def test_only_exactly_true_passes() -> None:
    results = run(
        "test_true if true\n\ntest_false if false\n\ntest_one := 1\n\n"
        'test_string := "true"\n\ntest_undefined if input.missing\n'
    )
    assert {name: r.passed for name, r in results.items()} == {
        "test_true": True,
        "test_false": False,
        "test_one": False,
        "test_string": False,
        "test_undefined": False,
    }
    assert results["test_true"].error is None
    assert results["test_true"].message == ""
    assert results["test_one"].error == 'expected true, got {"expressions":[1]}'
    assert results["test_undefined"].error is not None
    assert results["test_undefined"].error.startswith("undefined")


def test_every_result_is_timed() -> None:
    results = run("test_slowish if count([x | some x in numbers.range(1, 2000)]) == 2000\n")
    assert results["test_slowish"].passed
    assert results["test_slowish"].duration_us > 0


def test_compile_error_fails_every_test_with_the_compiler_message() -> None:
    report = rego_tests.run_tests(
        {"good_test.rego": HEADER + "test_fine if true\n", "bad.rego": HEADER + "x := [\n"},
        "{}",
    )
    assert report.error is not None
    assert "bad.rego:" in report.error
    assert [(r.passed, r.error) for r in report.results] == [(False, report.error)]
    assert not report.ok


def test_unsafe_variable_fails_the_test() -> None:
    # OPA rejects this at compile time; rego-cpp 1.5.2 compiles it and leaves it undefined.
    report = rego_tests.run_tests({"u.rego": HEADER + "test_unsafe if y > 1\n"}, "{}")
    assert report.failed == 1
    assert not report.ok


def test_broken_module_without_tests_still_reports_the_error() -> None:
    report = rego_tests.run_tests({"bad.rego": HEADER + "x := [\n"}, "{}")
    assert report.results == []
    assert report.error is not None
    assert not report.ok


def test_evaluation_error_fails_only_that_test() -> None:
    results = run(
        "clash := 1 if true\n\nclash := 2 if true\n\n"
        "test_clash if clash == 1\n\ntest_fine if true\n"
    )
    assert results["test_fine"].passed
    assert not results["test_clash"].passed
    assert results["test_clash"].error == "complete rules must not produce multiple outputs"


def test_missing_data_fails_the_tests_that_need_it() -> None:
    body = "test_needs_data if data.hub.config.limit == 3\n\ntest_no_data if true\n"
    missing = run(body)
    assert not missing["test_needs_data"].passed
    assert missing["test_no_data"].passed
    present = run(body, '{"hub": {"config": {"limit": 3}}}')
    assert present["test_needs_data"].passed


def test_invalid_data_json_fails_every_test() -> None:
    report = rego_tests.run_tests({"d.rego": HEADER + "test_fine if true\n"}, "{not json")
    assert report.error is not None
    assert report.failed == 1


def test_report_round_trips_as_json() -> None:
    report = rego_tests.run_tests({"d.rego": HEADER + "test_fine if true\n"}, "{}")
    decoded = msgspec.json.decode(msgspec.json.encode(report), type=rego_tests.TestReport)
    assert decoded == report
    assert (decoded.passed, decoded.failed, decoded.ok) == (1, 0, True)


# Reading a bundle folder


def write_bundle(root: Path) -> None:
    (root / "hub").mkdir(parents=True)
    (root / "hub" / "a.rego").write_text(HEADER + "test_a if data.x == 1\n")
    (root / "b.rego").write_text(HEADER + "test_b if true\n")
    (root / "notes.md").write_text("not policy")
    (root / "data.json").write_text('{"x": 1}')


def test_a_bundle_folder_runs_through_the_runner(tmp_path: Path) -> None:
    write_bundle(tmp_path)
    bundle = load_bundle_dir(tmp_path)
    assert sorted({**bundle.sources, **bundle.tests}) == ["b.rego", "hub/a.rego"]
    assert rego_tests.run_tests({**bundle.sources, **bundle.tests}, bundle.data_json).ok


@pytest.mark.parametrize("where", ["module", "folder", "data", "root"])
def test_symlinks_are_refused(tmp_path: Path, where: str) -> None:
    bundle = tmp_path / "bundle"
    write_bundle(bundle)
    outside = tmp_path / "outside.rego"
    outside.write_text(HEADER + "test_x if true\n")
    target = bundle
    if where == "module":
        (bundle / "hub" / "link.rego").symlink_to(outside)
    elif where == "folder":
        (bundle / "elsewhere").symlink_to(tmp_path, target_is_directory=True)
    elif where == "data":
        (bundle / "data.json").unlink()
        (bundle / "data.json").symlink_to(outside)
    else:
        target = tmp_path / "alias"
        target.symlink_to(bundle, target_is_directory=True)
    with pytest.raises(PolicyLoadError, match="symbolic link"):
        load_bundle_dir(target)


def test_oversized_file_is_refused_and_the_limit_itself_is_read(tmp_path: Path) -> None:
    write_bundle(tmp_path)
    text = HEADER + "#" * (MAX_FILE_BYTES - len(HEADER) - 1) + "\n"
    (tmp_path / "edge.rego").write_text(text)
    assert len(load_bundle_dir(tmp_path).sources["edge.rego"]) == MAX_FILE_BYTES
    (tmp_path / "big.rego").write_text(text + "#")
    with pytest.raises(PolicyLoadError, match="larger than"):
        load_bundle_dir(tmp_path)


def test_non_utf8_module_and_missing_folder_are_refused(tmp_path: Path) -> None:
    write_bundle(tmp_path)
    (tmp_path / "latin.rego").write_bytes(b"package x\n# caf\xe9\n")
    with pytest.raises(PolicyLoadError, match="UTF-8"):
        load_bundle_dir(tmp_path)
    with pytest.raises(PolicyLoadError):
        load_bundle_dir(tmp_path / "absent")
