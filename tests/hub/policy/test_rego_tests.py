"""The Rego test runner's edge cases: discovery, what counts as a pass, compile and
evaluation errors, missing data, and the bundle-folder reader's refusals."""

from pathlib import Path

import msgspec
import pytest

from hub.policy import rego_tests

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


def test_load_bundle_dir_reads_rego_and_data(tmp_path: Path) -> None:
    write_bundle(tmp_path)
    sources, data_json = rego_tests.load_bundle_dir(tmp_path)
    assert sorted(sources) == ["b.rego", "hub/a.rego"]
    assert data_json == '{"x": 1}'
    assert rego_tests.run_tests(sources, data_json).ok


def test_load_bundle_dir_without_data_gives_an_empty_document(tmp_path: Path) -> None:
    write_bundle(tmp_path)
    (tmp_path / "data.json").unlink()
    sources, data_json = rego_tests.load_bundle_dir(tmp_path)
    assert data_json == "{}"
    report = rego_tests.run_tests(sources, data_json)
    assert {r.name: r.passed for r in report.results} == {
        "data.demo_test.test_a": False,
        "data.demo_test.test_b": True,
    }


def test_symlinked_module_is_refused(tmp_path: Path) -> None:
    write_bundle(tmp_path)
    outside = tmp_path.parent / f"{tmp_path.name}-outside.rego"
    outside.write_text(HEADER + "test_x if true\n")
    (tmp_path / "hub" / "link.rego").symlink_to(outside)
    with pytest.raises(rego_tests.BundleFileError, match="symlink"):
        rego_tests.load_bundle_dir(tmp_path)


def test_symlinked_folder_is_refused(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    write_bundle(bundle)
    (bundle / "elsewhere").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(rego_tests.BundleFileError, match="symlink"):
        rego_tests.load_bundle_dir(bundle)


def test_symlinked_data_is_refused(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    write_bundle(bundle)
    (bundle / "data.json").unlink()
    (tmp_path / "secret.json").write_text('{"x": 1}')
    (bundle / "data.json").symlink_to(tmp_path / "secret.json")
    with pytest.raises(rego_tests.BundleFileError, match="symlink"):
        rego_tests.load_bundle_dir(bundle)


def test_symlinked_bundle_root_is_refused(tmp_path: Path) -> None:
    write_bundle(tmp_path / "real")
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    with pytest.raises(rego_tests.BundleFileError):
        rego_tests.load_bundle_dir(tmp_path / "alias")


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    write_bundle(tmp_path)
    padding = "#" * rego_tests.MAX_FILE_BYTES
    (tmp_path / "big.rego").write_text(HEADER + padding + "\n")
    with pytest.raises(rego_tests.BundleFileError, match="larger than"):
        rego_tests.load_bundle_dir(tmp_path)


def test_file_of_exactly_the_limit_is_read(tmp_path: Path) -> None:
    write_bundle(tmp_path)
    text = HEADER + "#" * (rego_tests.MAX_FILE_BYTES - len(HEADER) - 1) + "\n"
    (tmp_path / "edge.rego").write_text(text)
    sources, _ = rego_tests.load_bundle_dir(tmp_path)
    assert len(sources["edge.rego"]) == rego_tests.MAX_FILE_BYTES


def test_non_utf8_module_is_refused(tmp_path: Path) -> None:
    write_bundle(tmp_path)
    (tmp_path / "latin.rego").write_bytes(b"package x\n# caf\xe9\n")
    with pytest.raises(rego_tests.BundleFileError, match="UTF-8"):
        rego_tests.load_bundle_dir(tmp_path)


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(rego_tests.BundleFileError):
        rego_tests.load_bundle_dir(tmp_path / "absent")
