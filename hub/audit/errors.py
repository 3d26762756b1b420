"""Errors of the audit trail's appender (ADR 0025) and of the verifying witness (ADR 0043)."""

from hub.kit.errors import ConflictError, HubError, UnavailableError, ValidationError


class AuditBusyError(UnavailableError):
    """The appender's queue stayed full for the whole wait: the database cannot keep up."""

    code = "audit_busy"


class AuditClosedError(UnavailableError):
    """The appender is shutting down (or shut down) and takes no more entries."""

    code = "audit_closed"


class AuditWriteError(UnavailableError):
    """The batch holding this entry failed on its way to the database (connection lost,
    timeout, database down); whether it committed is unknown. The cause is chained."""

    code = "audit_write_failed"


class AuditEntryRejectedError(HubError):
    """PostgreSQL refused this entry's content (e.g. a NUL character); nothing of it was
    written. A bug of the caller that built the entry, not a reason to retry."""

    status = 500
    code = "audit_entry_rejected"
    title = "Audit entry rejected"


class WitnessRefusedError(Exception):
    """The witness refused a checkpoint for good (not signed by the key it knows, or not
    consistent with what it holds): asking again cannot help; an operator must look."""


class StaleSizeError(ConflictError):
    """The hub proved from a size the witness does not hold: it should prove again from
    `witness_size` (in the problem), which it learns here."""

    code = "witness_size_mismatch"
    title = "The witness holds another size"


class InconsistentError(ValidationError):
    """The checkpoint does not extend the one the witness holds: the log was rewritten, or the
    proof is wrong. The witness keeps it as evidence."""

    code = "checkpoint_inconsistent"
    title = "Checkpoint does not extend the one witnessed"
