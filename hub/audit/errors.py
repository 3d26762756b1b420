"""Errors of the audit trail's appender (ADR 0025)."""

from hub.kit.errors import HubError, UnavailableError


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
