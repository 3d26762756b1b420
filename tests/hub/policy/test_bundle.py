"""Reading OPA bundles from a folder: manifest, modules, tests, merged data, wasm."""

from pathlib import Path

import msgspec
import pytest

from hub.policy.bundle import load_bundle_dir, load_bundle_files
from hub.policy.errors import PolicyLoadError

AUTHZ = "package hub.authz\n\nimport rego.v1\n\ndefault decision := {}\n"
AUTHZ_TEST = "package hub.authz_test\n\nimport rego.v1\n\ntest_x if true\n"
MASK = "package system.log\n\nimport rego.v1\n\nmask contains `/input/x` if true\n"


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def test_a_bundle_folder_is_read_with_its_manifest_data_and_tests(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            ".manifest": '{"revision": "2026-11-22.1", "roots": ["hub", "system"]}',
            "hub/authz/authz.rego": AUTHZ,
            "hub/authz/authz_test.rego": AUTHZ_TEST,
            "system/log/mask.rego": MASK,
            "data.json": '{"hub": {"agencies": {"a": 1}}}',
            "hub/retention/data.json": '{"days": {"default": 30}}',
            ".signatures.json": "{}",
            ".git/config": "ignored",
        },
    )
    bundle = load_bundle_dir(root)
    assert bundle.revision == "2026-11-22.1"
    assert bundle.roots == ["hub", "system"]
    assert sorted(bundle.sources) == ["hub/authz/authz.rego", "system/log/mask.rego"]
    assert list(bundle.tests) == ["hub/authz/authz_test.rego"]
    assert msgspec.json.decode(bundle.data_json) == {
        "hub": {"agencies": {"a": 1}, "retention": {"days": {"default": 30}}}
    }
    assert bundle.wasm is None


def test_without_a_manifest_the_revision_is_a_content_digest() -> None:
    files = {"hub/authz.rego": AUTHZ.encode()}
    first, again = load_bundle_files(files), load_bundle_files(dict(files))
    changed = load_bundle_files({"hub/authz.rego": AUTHZ.encode() + b"\n"})
    assert first.revision.startswith("sha256-")
    assert first.revision == again.revision != changed.revision
    assert first.roots == [""]


def test_policy_wasm_is_carried_with_its_entrypoints() -> None:
    manifest = {
        "revision": "w",
        "wasm": [{"entrypoint": "hub/authz/decision", "module": "/policy.wasm"}],
    }
    bundle = load_bundle_files(
        {".manifest": msgspec.json.encode(manifest), "policy.wasm": b"\0asm", "data.json": b"{}"}
    )
    assert bundle.wasm == b"\0asm"
    assert bundle.wasm_entrypoints == ["hub/authz/decision"]
    assert bundle.sources == {}


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({".manifest": b"{not json", "a.rego": AUTHZ.encode()}, ".manifest is not valid"),
        ({".manifest": b'{"roots": ["system"]}', "a.rego": AUTHZ.encode()}, "outside the bundle"),
        ({"a.rego": b"import rego.v1\n"}, "no package"),
        ({"a.rego": b"\xff\xfe"}, "not UTF-8"),
        ({"a.rego": AUTHZ.encode(), "data.json": b"[1]"}, "must hold a JSON object"),
        ({"a.rego": AUTHZ.encode(), "data.json": b"{oops"}, "not valid JSON"),
        (
            {
                "a.rego": AUTHZ.encode(),
                "data.json": b'{"hub": {"x": 1}}',
                "hub/data.json": b'{"x": 2}',
            },
            "defined twice",
        ),
        (
            {"a.rego": AUTHZ.encode(), "data.json": b'{"hub": 1}', "hub/data.json": b'{"x": 2}'},
            "overlaps",
        ),
        ({"data.json": b"{}"}, "neither Rego modules nor policy.wasm"),
        (
            {".manifest": b'{"wasm": [{"entrypoint": "e", "module": "/p.wasm"}]}'},
            "does not contain it",
        ),
    ],
)
def test_malformed_bundles_are_load_errors(files: dict[str, bytes], message: str) -> None:
    with pytest.raises(PolicyLoadError, match=message):
        load_bundle_files(files)


def test_a_missing_folder_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError, match="does not exist"):
        load_bundle_dir(tmp_path / "nope")


def test_a_symbolic_link_in_a_bundle_folder_is_refused(tmp_path: Path) -> None:
    outside = write(tmp_path / "outside", {"secret.json": "{}"})
    root = write(tmp_path / "bundle", {"hub/authz.rego": AUTHZ})
    (root / "hub" / "data.json").symlink_to(outside / "secret.json")
    with pytest.raises(PolicyLoadError, match="symbolic link"):
        load_bundle_dir(root)
