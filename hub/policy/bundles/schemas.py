"""Structs of bundle management: what crosses HTTP, Redis and the CLI."""

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from hub.policy.bundles.archive import REVISION_PATTERN

BundleState = Literal["uploaded", "active", "retired", "rejected"]
Revision = Annotated[str, msgspec.Meta(pattern=REVISION_PATTERN, description="Bundle revision")]


class RegoTestRead(msgspec.Struct, frozen=True, kw_only=True):
    """One Rego test of a bundle and how it went."""

    name: str
    passed: bool
    message: str | None = None


class RegoTestSummary(msgspec.Struct, frozen=True, kw_only=True):
    """The bundle's Rego tests as run at upload (or the reason it could not be loaded)."""

    passed: int
    failed: int
    failing: list[str] = []
    tests: list[RegoTestRead] = []
    error: str | None = None


class BundleRead(msgspec.Struct, frozen=True, kw_only=True):
    """A stored bundle (its archive stays in the hub)."""

    revision: str
    sha256: str
    status: BundleState
    roots: list[str]
    uploaded_at: datetime
    uploaded_by: str
    activated_at: datetime | None = None
    activated_by: str | None = None
    tests: RegoTestSummary | None = None


class UploadResult(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to an upload: the stored bundle and whether this call created it
    (False when the same archive was uploaded before)."""

    bundle: BundleRead
    created: bool
    signed_by: str | None = None


class RollbackRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Roll back to an earlier (previously active) revision."""

    revision: Revision


class ProcessRevision(msgspec.Struct, frozen=True, kw_only=True):
    """Which bundle revision one hub process evaluates, as it last reported."""

    process: str
    revision: str
    seen_at: datetime


class PolicyStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The active bundle and what every live process is running; `converged` is true when
    processes report and all run one revision, the active one once a bundle is uploaded
    (`processes_error` when Redis could not be read)."""

    active_revision: str | None
    activated_at: datetime | None
    activated_by: str | None
    processes: list[ProcessRevision]
    converged: bool
    processes_error: str | None = None


class ActivationNotice(msgspec.Struct, frozen=True, kw_only=True):
    """Published on `<prefix>policy:activations` after an activation commits. Receivers
    re-read PostgreSQL rather than trust it: it only says "look now"."""

    revision: str
    at: datetime
