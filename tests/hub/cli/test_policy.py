"""`hub policy test|build|sign|keygen|push` (the group is called directly with click's runner;
`push` talks to a small stand-in HTTP server that records what it was sent)."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner

from hub.cli.policy import policy_group
from hub.policy.bundles.archive import read_archive
from hub.policy.bundles.keys import VerifyKey
from hub.policy.bundles.signing import verify_bundle
from tests.hub.policy.bundles.builders import bundle_files, write_bundle_dir


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(policy_group, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return write_bundle_dir(tmp_path / "good", bundle_files("r1"))


@pytest.fixture
def bad(tmp_path: Path) -> Path:
    return write_bundle_dir(tmp_path / "bad", bundle_files("r2", failing=True))


def test_test_reports_each_test_and_fails_on_a_failure(good: Path, bad: Path) -> None:
    code, out, _ = run("test", str(good))
    assert code == 0
    assert "PASS data.hub.authz_test.test_admin_is_allowed" in out
    assert out.strip().endswith("2 passed, 0 failed")
    code, out, _ = run("test", str(bad))
    assert code == 1
    assert "FAIL data.hub.authz_test.test_everyone_is_allowed" in out
    code, out, _ = run("test", str(bad), "--json")
    report = json.loads(out)
    assert (code, report["failed"], report["failing"]) == (
        1,
        1,
        ["data.hub.authz_test.test_everyone_is_allowed"],
    )


def test_build_is_reproducible_and_refuses_failing_tests(
    good: Path, bad: Path, tmp_path: Path
) -> None:
    first, second = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    assert run("build", str(good), "-o", str(first))[0] == 0
    assert run("build", str(good), "-o", str(second))[0] == 0
    assert first.read_bytes() == second.read_bytes()
    assert read_archive(first.read_bytes()).manifest.revision == "r1"
    code, _, err = run("build", str(bad), "-o", str(tmp_path / "c.tar.gz"))
    assert (code, "nothing was built" in err, (tmp_path / "c.tar.gz").exists()) == (1, True, False)
    assert run("build", str(bad), "-o", str(tmp_path / "c.tar.gz"), "--skip-tests")[0] == 0


def test_keygen_then_sign_gives_a_bundle_the_hub_verifies(good: Path, tmp_path: Path) -> None:
    key = tmp_path / "admin.pem"
    code, public_pem, _ = run("keygen", "--out", str(key))
    assert code == 0
    assert public_pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert key.stat().st_mode & 0o777 == 0o600
    assert run("keygen", "--out", str(key))[0] == 2  # never overwrites a private key
    archive = tmp_path / "b.tar.gz"
    run("build", str(good), "-o", str(archive))
    code, out, _ = run("sign", str(archive), "--key", str(key), "--key-id", "admin-2026")
    assert code == 0
    signed = tmp_path / "b.signed.tar.gz"
    assert str(signed) in out
    files = read_archive(signed.read_bytes()).files
    check = verify_bundle(
        files, keys={"admin-2026": VerifyKey(public_key=public_pem)}, required=True
    )
    assert check is not None
    assert check.key_id == "admin-2026"


class Recorder(BaseHTTPRequestHandler):
    """Answers uploads and activations like the hub; keeps what it was sent."""

    seen: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).seen.append((self.path, dict(self.headers), body))
        if body.startswith(b"bad"):
            status, answer = (
                422,
                {
                    "type": "/problems/bundle_tests_failed",
                    "title": "Policy bundle rejected",
                    "status": 422,
                    "code": "bundle_tests_failed",
                    "detail": "bundle r9: 1 of 3 tests failed",
                    "failed_tests": ["data.hub.authz_test.test_x"],
                },
            )
        elif self.path.endswith("/activate"):
            status, answer = 200, bundle("active")
        else:
            status, answer = 201, {"bundle": bundle("uploaded"), "created": True}
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        del format, args


def bundle(status: str) -> dict[str, object]:
    return {
        "revision": "r1",
        "sha256": "0" * 64,
        "status": status,
        "roots": ["hub"],
        "uploaded_at": "2026-11-22T10:00:00Z",
        "uploaded_by": "user:ada",
        "activated_by": "user:ada" if status == "active" else None,
    }


@pytest.fixture
def hub_url() -> Iterator[str]:
    Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_push_uploads_with_the_token_and_activates(hub_url: str, tmp_path: Path) -> None:
    archive = tmp_path / "b.tar.gz"
    archive.write_bytes(b"\x1f\x8b archive bytes")
    code, out, _ = run(
        "push", str(archive), "--url", hub_url + "/", "--token", "hubt_x", "--activate"
    )
    assert code == 0, out
    assert out.splitlines() == ["stored: r1 (uploaded)", "activated r1 (by user:ada)"]
    (path, headers, body), (activate_path, _, _) = Recorder.seen
    assert (path, body) == ("/v1/admin/policy/bundles", archive.read_bytes())
    assert headers["Authorization"] == "Bearer hubt_x"
    assert headers["Content-Type"] == "application/gzip"
    assert activate_path == "/v1/admin/policy/bundles/r1/activate"


def test_push_explains_a_refusal_and_an_unreachable_hub(hub_url: str, tmp_path: Path) -> None:
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(b"bad bundle")
    code, _, err = run("push", str(archive), "--url", hub_url, "--token", "t")
    assert code == 1
    assert "422 bundle_tests_failed" in err
    assert "data.hub.authz_test.test_x" in err
    code, _, err = run("push", str(archive), "--url", "http://127.0.0.1:9", "--token", "t")
    assert (code, "cannot reach" in err) == (1, True)
