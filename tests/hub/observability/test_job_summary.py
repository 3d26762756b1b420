"""The worker's job summary: one line per interval, counted by job kind."""

import asyncio

import pytest

from hub.observability.job_summary import JobSummary, job_kind, summary_text


@pytest.mark.parametrize(
    ("job_id", "kind"),
    [
        ("cron:seal_audit_job:1733300000123", "seal_audit_job"),
        ("deliver:police-north", "deliver"),
        ("scan:3f2a", "scan"),
        ("5b1c0e2f9a8d4c7b", "other"),
        ("", "other"),
    ],
)
def test_job_kind(job_id: str, kind: str) -> None:
    assert job_kind(job_id) == kind
    assert job_kind(f"hub:{job_id}", prefix="hub:") == kind  # delivery and scan ids carry it


def test_summary_text_most_frequent_first() -> None:
    assert summary_text({"seal": 10, "deliver": 30}, 10.0) == "40 jobs in 10 s: deliver 30, seal 10"


async def test_one_line_per_interval_and_none_when_idle() -> None:
    lines: list[str] = []
    summary = JobSummary(every=0.05, emit=lines.append)
    summary.start()
    for job_id in ("deliver:a", "deliver:b", "cron:seal_audit_job:1"):
        await summary.job_started({"job_id": job_id})
    await asyncio.sleep(0.08)
    await asyncio.sleep(0.1)  # an idle interval writes nothing
    await summary.stop()
    assert lines == ["3 jobs in 0.05 s: deliver 2, seal_audit_job 1"]
