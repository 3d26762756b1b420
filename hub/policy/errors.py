"""Errors of the policy domain: a bundle that will not load, a decision that could not be made,
and a decision log that cannot take more records."""

from hub.kit.errors import HubError, UnavailableError


class PolicyLoadError(HubError):
    """A bundle could not be read or compiled; `detail` carries the compiler's message.

    422: the bundle arrived intact but is not a policy the hub can run. The active bundle
    stays in force.
    """

    status = 422
    code = "policy_load_failed"
    title = "Policy bundle cannot be loaded"


class PolicyEvaluationError(HubError):
    """An entrypoint could not be evaluated: undefined, a runtime error, or no bundle active.

    The policy service turns it into a fail-closed (deny-shaped) result; it reaches HTTP only
    where there is no deny shape to fall back on, and then nothing was allowed.
    """

    status = 503
    code = "policy_error"
    title = "Policy evaluation failed"


class DecisionLogFullError(UnavailableError):
    """The decision log's buffer stayed full for the whole bounded wait.

    The decision cannot be recorded, so it must not take effect: the service fails closed.
    """

    code = "decision_log_full"
    title = "Decision log is full"
