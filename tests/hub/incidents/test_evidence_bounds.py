"""Evidence checks are bounded: members judged from the central directory before reading,
hashed as streams, off the event loop."""

import io
import time
import tracemalloc
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from hub.audit import ExportSigner
from hub.incidents.evidence import ArchiveLimits, verify_evidence
from hub.runtime import Services
from tests.hub.audit.test_routes import bearer

pytestmark = [pytest.mark.db, pytest.mark.redis]
MiB = 1 << 20


def bomb(megabytes: int) -> bytes:
    """A ZIP of well under a megabyte that inflates to `megabytes` of zeros."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("incident.json", "w") as member:
            for _ in range(megabytes):
                member.write(bytes(MiB))
        archive.writestr("manifest.json", "{}")
        archive.writestr("manifest.sig", "")
    return out.getvalue()


def many_members(count: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for i in range(count):
            archive.writestr(f"m{i}", b"")
    return out.getvalue()


async def test_a_zip_bomb_is_refused_unread_in_little_memory_and_time(
    client: AsyncTestClient, services: Services
) -> None:
    package = bomb(128)
    assert len(package) < MiB
    headers = await bearer(client, services, "olga", "compliance_officer")
    headers["Content-Type"] = "application/zip"
    tracemalloc.start()
    try:
        started = time.perf_counter()
        answer = await client.post(
            "/v1/incidents/evidence/verify", content=package, headers=headers
        )
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert answer.status_code == 200, answer.text
    check = answer.json()
    assert check["ok"] is False
    assert check["problems"] == ["incident.json is compressed more than 100 to 1"]
    assert elapsed < 1.0
    assert peak < 32 * MiB  # the old check inflated all 128 MiB into memory


def test_too_many_members_are_refused_from_the_directory(tmp_path: Path) -> None:
    signer = ExportSigner.from_dir(str(tmp_path))
    check = verify_evidence(
        io.BytesIO(many_members(50)), signer=signer, limits=ArchiveLimits(max_members=40)
    )
    assert (check.ok, check.problems) == (False, ["more than 40 files"])


def test_big_members_are_hashed_as_streams(tmp_path: Path) -> None:
    """A member within the limits is read a chunk at a time: memory stays near one chunk."""
    signer = ExportSigner.from_dir(str(tmp_path))
    files = {"media/a.png": bytes(range(256)) * (64 * 1024)}  # 16 MiB, stored as is
    package = io.BytesIO()
    signed = signer.sign(files, kind="incident_evidence", at=datetime.now(UTC))
    with zipfile.ZipFile(package, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr("manifest.json", signed.manifest)
        archive.writestr("manifest.sig", signed.signature)
    package.seek(0)
    tracemalloc.start()
    try:
        check = verify_evidence(package, signer=signer)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (check.ok, check.files, check.problems) == (True, 1, [])
    assert peak < 8 * MiB
