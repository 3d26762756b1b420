"""Structs of retention and privacy that cross a boundary (HTTP, CLI, jobs)."""

from datetime import datetime
from typing import Annotated

import msgspec


class ClassReport(msgspec.Struct, frozen=True, kw_only=True):
    """What the sweep did (or, in a dry run, would do) to one data class."""

    data_class: str
    keep_days_min: int | None
    keep_days_max: int | None
    rows: int = 0
    partitions: list[str] = []
    files: int = 0
    note: str = ""


class SweepReport(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of one sweep: counts by data class and the decisions behind them."""

    run_id: str | None
    dry_run: bool
    started_at: datetime
    finished_at: datetime
    classes: list[ClassReport]
    decision_ids: list[str]
    interrupted_runs: int = 0


class ForgetRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Forget a subject, named by plate text or directly by its subject hash."""

    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    plate_text: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    subject: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")] | None = None


class ForgetResult(msgspec.Struct, frozen=True, kw_only=True):
    """What forgetting did; the plate text itself is never echoed or stored."""

    subject: str
    known: bool
    vault_rows: int
    payloads_scrubbed: int
