"""Errors of the feeds domain."""

from hub.kit.errors import (
    BadRequestError,
    ForbiddenError,
    HubError,
    NotFoundError,
    UnavailableError,
)


class CursorError(BadRequestError):
    """A cursor that was altered, forged or issued to someone else."""

    code = "cursor_invalid"


class NotAnAgencyError(ForbiddenError):
    """The subject acts for no registered, enabled agency, so nothing can be released."""

    code = "agency_unknown"


class AgencyPausedError(ForbiddenError):
    """The reader's agency is paused: nothing is released to it on any channel until an
    admin resumes it (acknowledging what it already received stays possible)."""

    code = "agency_paused"


class MediaNotFoundError(NotFoundError):
    """No such image for this agency (said the same way whether it exists or not)."""

    code = "media_not_found"


class SlowConsumerError(HubError):
    """A live subscriber fell more than its buffer behind and was dropped."""

    status = 503
    code = "slow_consumer"


class FeedsBusyError(UnavailableError):
    """Feed page work is over this API process's budget (ingest has priority, ADR 0026):
    503 with Retry-After; a reader asks again no sooner than that."""

    code = "feeds_busy"
    title = "Feed pages are busy"


class PositionError(BadRequestError):
    """A stated feed position that no position is ever shown as (outside [10^15, 2 x 10^15)),
    such as one from an earlier numbering of feed positions."""

    code = "position_invalid"
