"""Prometheus metrics of the policy engine and its decision log.

Collectors are made by `PolicyMetrics(registry)` rather than at import, so tests count on a
registry of their own; a process shares one set on the default registry via
`default_metrics()` (Prometheus refuses a second collector of the same name on a registry).
"""

from functools import cache

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

# Decisions take tens of microseconds to a few milliseconds.
_LATENCY_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
)  # fmt: skip


class PolicyMetrics:
    """The policy collectors, registered on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions = Counter(
            "hub_policy_decisions_total",
            "Policy decisions by entrypoint and outcome (ok, or failed_closed).",
            ["entrypoint", "outcome"],
            registry=registry,
        )
        self.failed_closed = Counter(
            "hub_policy_failed_closed_total",
            "Decisions that failed closed, by cause (no_bundle, evaluation, timeout, "
            "schema, log_full). Alert on any increase.",
            ["entrypoint", "cause"],
            registry=registry,
        )
        self.latency = Histogram(
            "hub_policy_decision_seconds",
            "Time to evaluate an entrypoint and decode its result.",
            ["entrypoint"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.mask_failures = Counter(
            "hub_policy_mask_failures_total",
            "Decisions logged fully redacted because system/log/mask failed.",
            ["entrypoint"],
            registry=registry,
        )
        self.log_buffered = Gauge(
            "hub_policy_decision_log_buffered",
            "Decision records waiting to be written to policy_decisions.",
            registry=registry,
        )
        self.log_full = Counter(
            "hub_policy_decision_log_full_total",
            "Times a decision had to wait because the decision log buffer was full.",
            registry=registry,
        )
        self.log_refused = Counter(
            "hub_policy_decision_log_refused_total",
            "Decision records refused after the bounded wait (their decisions failed closed).",
            registry=registry,
        )
        self.log_written = Counter(
            "hub_policy_decision_log_written_total",
            "Decision records written to policy_decisions.",
            registry=registry,
        )
        self.log_flush_failures = Counter(
            "hub_policy_decision_log_flush_failures_total",
            "Failed flushes of the decision log (records kept and retried).",
            registry=registry,
        )
        self.log_unloggable = Counter(
            "hub_policy_decision_log_unloggable_total",
            "Records PostgreSQL refused; stored with their input and result withheld.",
            registry=registry,
        )
        self.log_lost = Counter(
            "hub_policy_decision_log_lost_total",
            "Records never stored: unwritten when the process stopped (database down past the "
            "drain timeout), or refused by PostgreSQL even with input and result withheld.",
            registry=registry,
        )


@cache
def default_metrics() -> PolicyMetrics:
    """The process's policy metrics, on Prometheus's default registry."""
    return PolicyMetrics(REGISTRY)
