"""Reading untrusted bundle archives: every unsafe or oversized archive has its own code."""

import gzip
import hashlib
import os
import tarfile
import time
import zlib
from pathlib import Path

import pytest

from hub.policy.bundles.archive import (
    ArchiveLimits,
    build_archive,
    read_archive,
    write_archive,
)
from hub.policy.bundles.errors import BundleError
from tests.hub.policy.bundles.builders import bundle_files, entry, raw_tar_gz, write_bundle_dir

MANIFEST = b'{"revision": "r1"}'


def refused(data: bytes, code: str, limits: ArchiveLimits | None = None) -> BundleError:
    with pytest.raises(BundleError) as caught:
        read_archive(data, limits=limits)
    assert caught.value.code == code, caught.value.detail
    return caught.value


def test_a_written_archive_reads_back_with_its_manifest_and_digest() -> None:
    files = bundle_files("rev-7")
    data = write_archive(files)
    bundle = read_archive(data)
    assert bundle.files == files
    assert (bundle.manifest.revision, bundle.manifest.roots) == ("rev-7", ["hub"])
    assert bundle.sha256 == hashlib.sha256(data).hexdigest()


def test_build_is_reproducible_whatever_the_file_times(tmp_path: Path) -> None:
    folder = write_bundle_dir(tmp_path / "b", bundle_files())
    first = build_archive(folder)
    os.utime(folder / "hub" / "authz.rego", (time.time() + 3600, time.time() + 3600))
    (folder / ".editor-swap").write_text("left out: hidden")
    assert build_archive(folder) == first


def test_build_refuses_a_symbolic_link(tmp_path: Path) -> None:
    folder = write_bundle_dir(tmp_path / "b", bundle_files())
    (folder / "hub" / "link.rego").symlink_to("/etc/passwd")
    with pytest.raises(BundleError) as caught:
        build_archive(folder)
    assert caught.value.code == "bundle_path_unsafe"


def test_opa_build_style_names_and_folder_entries_are_accepted() -> None:
    data = raw_tar_gz(
        (entry("./", tarfile.DIRTYPE), None),
        (entry("/.manifest"), MANIFEST),
        (entry("./hub", tarfile.DIRTYPE), None),
        (entry("/hub/authz.rego"), b"package hub.authz\n"),
    )
    assert sorted(read_archive(data).files) == [".manifest", "hub/authz.rego"]


@pytest.mark.parametrize(
    "name",
    ["../evil.rego", "hub/../../evil.rego", "hub/./x.rego", "hub//x.rego", "/../etc/passwd"],
)
def test_path_traversal_is_refused(name: str) -> None:
    error = refused(
        raw_tar_gz((entry(".manifest"), MANIFEST), (entry(name), b"x")), "bundle_path_unsafe"
    )
    assert "unsafe entry name" in error.detail


@pytest.mark.parametrize(
    "name", ["//etc/passwd", "C:/evil.rego", "hub\\evil.rego", "x\x1b.rego", "\udcff.rego"]
)
def test_absolute_and_foreign_paths_are_refused(name: str) -> None:
    refused(raw_tar_gz((entry(".manifest"), MANIFEST), (entry(name), b"x")), "bundle_path_unsafe")


@pytest.mark.parametrize(
    ("kind", "link"),
    [
        (tarfile.SYMTYPE, "/etc/passwd"),
        (tarfile.LNKTYPE, ".manifest"),
        (tarfile.CHRTYPE, ""),
        (tarfile.BLKTYPE, ""),
        (tarfile.FIFOTYPE, ""),
    ],
)
def test_links_and_devices_are_refused(kind: bytes, link: str) -> None:
    data = raw_tar_gz((entry(".manifest"), MANIFEST), (entry("hub/x.rego", kind, link=link), None))
    error = refused(data, "bundle_path_unsafe")
    assert "only regular files" in error.detail


@pytest.mark.parametrize("second", ["hub/x.rego", "./hub/x.rego", "/hub/x.rego"])
def test_a_name_that_appears_twice_is_refused(second: str) -> None:
    data = raw_tar_gz(
        (entry(".manifest"), MANIFEST), (entry("hub/x.rego"), b"a"), (entry(second), b"b")
    )
    refused(data, "bundle_path_unsafe")


def test_an_oversized_file_is_refused_before_it_is_read() -> None:
    data = raw_tar_gz((entry(".manifest"), MANIFEST), (entry("hub/big.rego"), b"#" * 5000))
    error = refused(data, "bundle_too_large", ArchiveLimits(max_file_bytes=4096))
    assert "hub/big.rego" in error.detail


def test_an_oversized_archive_is_refused_unread() -> None:
    refused(write_archive(bundle_files()), "bundle_too_large", ArchiveLimits(max_archive_bytes=64))


def test_too_many_files_are_refused() -> None:
    files = {".manifest": MANIFEST} | {f"hub/m{i}.rego": b"package hub" for i in range(10)}
    refused(write_archive(files), "bundle_too_large", ArchiveLimits(max_files=5))


def test_files_that_together_are_too_large_are_refused() -> None:
    files = {".manifest": MANIFEST} | {f"hub/m{i}.rego": b"#" * 3000 for i in range(4)}
    refused(write_archive(files), "bundle_too_large", ArchiveLimits(max_total_bytes=10_000))


def test_a_gzip_bomb_stops_at_the_limit_not_at_the_end() -> None:
    # 1 GiB of zeros behind a valid tar header compresses to about 1 MiB.
    header = tarfile.TarInfo("hub/bomb.rego")
    header.size = 1 << 30
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunks = [deflate.compress(header.tobuf(format=tarfile.GNU_FORMAT))]
    zeros = bytes(1 << 20)
    chunks += [deflate.compress(zeros) for _ in range(1024)]
    bomb = b"".join(chunks) + deflate.flush()
    assert len(bomb) < 2 * 1024 * 1024
    started = time.perf_counter()
    limits = ArchiveLimits(max_archive_bytes=4 << 20, max_file_bytes=1 << 30)
    refused(bomb, "bundle_too_large", limits)
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a gzip stream at all",
        gzip.compress(b"gzip, but not a tar stream" * 40),
        write_archive(bundle_files())[:-40],  # truncated
        write_archive(bundle_files())[:10] + b"\xff" * 200,  # corrupt deflate data
    ],
    ids=["empty", "not-gzip", "not-tar", "truncated", "corrupt"],
)
def test_malformed_archives_are_refused(data: bytes) -> None:
    refused(data, "bundle_malformed")


def test_a_missing_manifest_is_refused() -> None:
    files = bundle_files()
    del files[".manifest"]
    error = refused(write_archive(files), "bundle_manifest_invalid")
    assert "no .manifest" in error.detail


@pytest.mark.parametrize(
    "manifest", [b"{}", b'{"revision": ""}', b'{"revision": "../x"}', b"[1, 2", b'{"revision": 3}']
)
def test_a_manifest_without_a_usable_revision_is_refused(manifest: bytes) -> None:
    refused(write_archive({".manifest": manifest}), "bundle_manifest_invalid")


def test_rego_that_is_not_utf8_is_refused() -> None:
    files = bundle_files() | {"hub/latin1.rego": "package hub.caf\xe9".encode("latin-1")}
    assert "not UTF-8" in refused(write_archive(files), "bundle_malformed").detail


def test_data_that_is_not_json_is_refused() -> None:
    files = bundle_files() | {"hub/data.json": b"{roles: [admin]}"}
    refused(write_archive(files), "bundle_malformed")


def test_bundle_errors_are_client_errors_with_stable_codes() -> None:
    error = refused(b"nope", "bundle_malformed")
    assert (error.status, error.code) == (400, "bundle_malformed")
    assert BundleError("x", code="bundle_tests_failed").status == 422
    assert BundleError("x", code="bundle_not_found").status == 404
