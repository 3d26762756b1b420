"""Errors of retention, holds and privacy."""

from hub.kit.errors import ConflictError, HubError


class InsufficientStorageError(HubError):
    """The media volume is past its threshold: new media is refused, nothing is deleted."""

    status = 507
    code = "insufficient_storage"
    title = "Insufficient storage"


class SweepRunningError(ConflictError):
    """Another sweep holds the retention lock."""

    code = "retention_sweep_running"


class SubjectUnknownError(HubError):
    """No PII is stored for this subject."""

    status = 404
    code = "subject_not_found"
    title = "Not found"
