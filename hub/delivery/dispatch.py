"""Delivering one agency's due work, a batch at a time: claim, re-hydrate, release, send,
record.

A batch is up to `batch_size` due rows of one agency claimed in one statement (leased, SKIP
LOCKED, so workers share an agency safely), their PII re-hydrated in one query, released one
by one through the policy service's cache (one evaluation per distinct verdict, every
delivery its own decision id and log record, written in batches by the decision log), sent
with the agency's concurrency over its adapter's kept-alive connections, and recorded in one
statement. Outcomes are values (`_Result`), not exceptions crossing layers. The job around it
(hub/delivery/jobs.py) turns the answer into "wake this agency again in n seconds".
"""

import asyncio
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
import structlog
from opentelemetry.trace import SpanKind

from adapters.base import (
    MAX_DETAIL_CHARS,
    Adapter,
    ConfigError,
    DeliveryError,
    Message,
    Receipt,
)
from hub.audit import AuditEntry, append_entry
from hub.delivery import ordering, repository
from hub.delivery.agencies import AgencyDirectory
from hub.delivery.breaker import CircuitBreaker, Permit
from hub.delivery.limits import AgencyLimits
from hub.delivery.metrics import DeliveryMetrics
from hub.delivery.repository import Claimed, Finish
from hub.delivery.schemas import Agency
from hub.kit.clock import utcnow
from hub.kit.db import Database
from hub.observability import span, trace_context
from hub.policy.guard import Decider
from hub.policy.release import release
from hub.policy.schemas import Recipient
from hub.retention import hydrate, process_keys

log = structlog.get_logger(__name__)

# A rate-limit wait this short is slept off in the job; a longer one re-arms the agency's timer.
MAX_INLINE_WAIT_SECONDS = 1.0
# Rows per batch: enough to pay a claim, a vault query and a finish per 200 deliveries, few
# enough that a worker killed mid-batch sends at most this many twice (to idempotent
# receivers, by delivery id).
BATCH_SIZE = 200


@dataclass(frozen=True, slots=True)
class Backoff:
    """Doubling backoff with equal jitter, capped, or the agency's own schedule; an agency's
    Retry-After wins when longer, up to `retry_after_max_seconds` (default: `max_seconds`)."""

    base_seconds: float
    max_seconds: float
    retry_after_max_seconds: float | None = None

    def delay(
        self,
        attempt: int,
        retry_after: float | None = None,
        *,
        schedule: Sequence[float] | None = None,
    ) -> float:
        """Seconds before attempt `attempt + 1`."""
        if schedule:
            # The agency asked for these waits: exactly, the last one repeating.
            delay = schedule[min(attempt, len(schedule)) - 1]
        else:
            ceiling = min(self.max_seconds, self.base_seconds * float(2 ** min(attempt - 1, 30)))
            # Equal jitter: at least half the step, so retries never bunch up at zero.
            delay = ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - not security
        if retry_after is not None:
            cap = self.retry_after_max_seconds or self.max_seconds
            delay = max(delay, min(retry_after, cap))
        return delay


@dataclass(frozen=True, slots=True)
class DeliveryDeps:
    """Everything a batch needs; built once per worker process."""

    db: Database
    policy: Decider
    adapters: dict[str, Adapter]
    directory: AgencyDirectory
    breaker: CircuitBreaker
    limits: AgencyLimits
    metrics: DeliveryMetrics
    hash_key: bytes
    backoff: Backoff
    lease_seconds: float
    auto_pause_seconds: float
    batch_size: int = BATCH_SIZE


class _Result(Finish, frozen=True, kw_only=True):
    """An attempt's ledger record plus whether it counts against the agency's health."""

    agency_failure: bool = False


Outcomes = list[tuple[Claimed, _Result]]


class _GoOn:
    """A full batch went: claim the next one."""


_GO_ON = _GoOn()


@dataclass(frozen=True, slots=True)
class Held:
    """The agency's circuit is open (or another worker is probing it): nothing may go for
    `seconds`, whatever ingest commits meanwhile."""

    seconds: float


async def run_agency(deps: DeliveryDeps, agency_id: UUID) -> float | Held | None:
    """Deliver the agency's due rows batch by batch, for about a quarter lease; seconds until
    it needs looking at again (0: more is due now), `Held` while its circuit is open, or None
    when nothing is open or it is paused."""
    agency = await _active(deps, agency_id)
    if agency is None:
        return None
    # Batches start for a quarter of the lease and sends for 0.4 of it; with each send bounded
    # at 0.6 of it, the job ends inside its timeout (= the lease) and before any of its rows
    # could be claimed again. A slow agency's batch may hold more rows than its concurrency
    # can send by then: those go back unattempted instead of outliving the lease.
    started = time.monotonic()
    deadline, send_by = started + deps.lease_seconds / 4, started + deps.lease_seconds * 0.4
    while True:
        step = await _batch(deps, agency, send_by=send_by)
        if not isinstance(step, _GoOn):
            return step
        if time.monotonic() >= deadline:
            return 0.0


async def _active(deps: DeliveryDeps, agency_id: UUID) -> Agency | None:
    agency = await deps.directory.get(agency_id)
    if agency is None or agency.status != "active":
        # Look again: a resume wakes the agency at once, and our view may predate it.
        agency = await deps.directory.get(agency_id, fresh=True)
    if agency is None or agency.status != "active":
        # Paused (or gone): the rows wait in the ledger; resume wakes the agency again.
        deps.metrics.deferred.labels(agency.name if agency else "?", "paused").inc()
        return None
    return agency


async def _batch(
    deps: DeliveryDeps, agency: Agency, *, send_by: float
) -> float | Held | _GoOn | None:
    """One batch; `_GO_ON` when a full one went, else when to look at the agency again
    (None: nothing is open)."""
    permit = await deps.breaker.permit(agency.id, probe_ttl=deps.lease_seconds)
    if not permit.allowed:
        deps.metrics.deferred.labels(agency.name, "breaker_open").inc()
        return Held(permit.wait_seconds + random.uniform(0, 1))  # noqa: S311 - spread wake-ups
    # A half-open circuit lets one probe through; a batch is at most a second of the rate.
    limit = 1 if permit.probe else min(deps.batch_size, max(1, int(agency.rate_per_second)))
    if ordering.is_ordered(agency):  # a receiver that needs order: heads only, in order
        return await _batch_in_order(deps, agency, permit, limit)
    full, limit = limit, deps.limits.claim_cap(agency.id, limit)  # a slow agency claims less
    async with deps.db.connection() as conn:  # one atomic statement: no BEGIN/COMMIT
        claimed = await repository.claim_batch(
            conn, agency.id, limit=limit, lease_seconds=deps.lease_seconds
        )
    if not claimed:
        await deps.breaker.release_probe(agency.id, permit)
        return await _next_due(deps, agency)
    wait = await deps.limits.rate_wait(agency.id, agency.rate_per_second, slots=len(claimed))
    if wait > MAX_INLINE_WAIT_SECONDS:
        return await _give_back(deps, agency, permit, claimed, wait)
    if wait > 0:
        await asyncio.sleep(wait)
    outcomes, unsent, late = await _deliver_all(deps, agency, claimed, send_by=send_by)
    deps.limits.note_pace(
        agency.id, claimed=len(claimed), sent=len(outcomes), late=late,
        floor=agency.max_concurrency, limit=full,
    )  # fmt: skip
    async with deps.db.connection() as conn:  # one statement: attempt rows + ledger
        await repository.finish_batch(conn, agency.id, outcomes)
        if unsent:  # the circuit opened or the send window closed: back, unattempted
            await repository.release_claims(conn, agency.id, unsent, delay=0.0)
    _count(deps, agency, outcomes)
    await _after(deps, agency, permit, [result for _, result in outcomes])
    if len(claimed) == limit and not unsent:
        return _GO_ON
    return await _next_due(deps, agency)


async def _batch_in_order(
    deps: DeliveryDeps, agency: Agency, permit: Permit, limit: int
) -> float | _GoOn | None:
    """A FIFO agency's batch (ADR 0019, hub/delivery/ordering.py): the heads of its queues,
    each queue's rows sent one at a time; a row to be retried stops its queue and the rows
    behind it go back unattempted, in their place."""
    claimed = await ordering.claim(deps.db, agency, limit=limit, lease_seconds=deps.lease_seconds)
    if not claimed:
        await deps.breaker.release_probe(agency.id, permit)
        return await ordering.next_due(deps.db, agency)
    wait = await deps.limits.rate_wait(agency.id, agency.rate_per_second, slots=len(claimed))
    if wait > MAX_INLINE_WAIT_SECONDS:
        return await _give_back(deps, agency, permit, claimed, wait)
    if wait > 0:
        await asyncio.sleep(wait)

    records = await _records(deps, claimed)  # one vault query for every queue's rows
    gate = deps.limits.semaphore(agency.id, agency.max_concurrency)

    async def send(row: Claimed) -> _Result:
        async with gate:
            return await _attempt(deps, agency, row, records.get(row.id))

    window = deps.lease_seconds * ordering.SEND_WINDOW_OF_LEASE
    outcomes, unsent = await ordering.send_in_order(claimed, send, window_seconds=window)
    async with deps.db.connection() as conn:
        await repository.finish_batch(conn, agency.id, outcomes)
        if unsent:
            await repository.release_claims(conn, agency.id, unsent, delay=0.0)
    _count(deps, agency, outcomes)
    await _after(deps, agency, permit, [result for _, result in outcomes])
    if len(claimed) == limit and not unsent:
        return _GO_ON
    return await ordering.next_due(deps.db, agency)


async def _next_due(deps: DeliveryDeps, agency: Agency) -> float | None:
    async with deps.db.connection() as conn:
        return await repository.next_due_in(conn, agency.id)


async def _give_back(
    deps: DeliveryDeps, agency: Agency, permit: Permit, claimed: Sequence[Claimed], wait: float
) -> float:
    """Rate-limited: hand the rows back unattempted, due when the slots are."""
    async with deps.db.connection() as conn:
        await repository.release_claims(conn, agency.id, claimed, delay=wait)
    await deps.breaker.release_probe(agency.id, permit)
    deps.metrics.deferred.labels(agency.name, "rate_limited").inc()
    return wait


async def _records(deps: DeliveryDeps, claimed: Sequence[Claimed]) -> dict[UUID, dict[str, Any]]:
    """The records of claimed rows whose event is still stored, PII filled in."""
    records = {
        c.id: delivery_record(c.payload, node_id=c.node_id)
        for c in claimed
        if c.payload is not None and c.node_id is not None
    }
    # Stored payloads name their PII; it comes back from the vault (absent once forgotten),
    # for the whole batch in one query.
    await hydrate(deps.db.pool, process_keys, list(records.values()))
    return records


async def _deliver_all(
    deps: DeliveryDeps, agency: Agency, claimed: Sequence[Claimed], *, send_by: float
) -> tuple[Outcomes, list[Claimed], bool]:
    """Release and send claimed rows, at most `max_concurrency` at a time per process; the
    rows left unsent because the batch met the breaker's threshold of failures first, or
    because their turn came after `send_by` (monotonic seconds); and whether any was left for
    that last reason (the agency is slower than the batch assumed)."""
    records = await _records(deps, claimed)
    gate = deps.limits.semaphore(agency.id, agency.max_concurrency)
    # The breaker counts a batch's failures when it ends; without this, a dead agency's batch
    # would make all its attempts (a release, a decision record and a send each) before the
    # circuit could open, on the event loop the healthy agencies' sends share.
    seen = Counter[str]()

    async def one(row: Claimed) -> tuple[Claimed, _Result | None]:
        async with gate:
            if seen["failed"] >= deps.breaker.threshold and not seen["delivered"]:
                return row, None
            if time.monotonic() > send_by:
                seen["late"] += 1
                return row, None
            result = await _attempt(deps, agency, row, records.get(row.id))
            seen["delivered"] += result.status == "delivered"
            seen["failed"] += result.agency_failure
            return row, result

    done = await asyncio.gather(*(one(row) for row in claimed))
    outcomes = [(row, result) for row, result in done if result is not None]
    return outcomes, [row for row, result in done if result is None], seen["late"] > 0


async def _attempt(
    deps: DeliveryDeps, agency: Agency, claimed: Claimed, record: dict[str, Any] | None
) -> _Result:
    started_at = utcnow()
    t0 = time.perf_counter()
    attributes = {"hub.delivery_id": str(claimed.id), "messaging.operation": "process"}
    # Each delivery continues the trace of the ingest request that created it.
    with span(
        "deliver", traceparent=claimed.traceparent, kind=SpanKind.CONSUMER, attributes=attributes
    ):
        result = await _decide_and_send(deps, agency, claimed, record, started_at)
        log.debug("delivery attempt done", delivery_id=str(claimed.id), outcome=result.outcome)
    duration = time.perf_counter() - t0
    return msgspec.structs.replace(result, duration_ms=int(duration * 1000))


def _count(deps: DeliveryDeps, agency: Agency, outcomes: Outcomes) -> None:
    for outcome, n in Counter(result.outcome for _, result in outcomes).items():
        deps.metrics.attempts.labels(agency.name, outcome).inc(n)
    histogram = deps.metrics.attempt_seconds.labels(agency.name)
    for _, result in outcomes:
        histogram.observe(result.duration_ms / 1000)


def delivery_record(payload: str, *, node_id: UUID) -> dict[str, Any]:
    """The record release policy judges for a delivery: the stored event plus the node that
    sent it, so the node, like every other field an agency receives, is policy's to redact."""
    record: dict[str, Any] = msgspec.json.decode(payload)
    record["node_id"] = str(node_id)
    return record


async def _decide_and_send(
    deps: DeliveryDeps,
    agency: Agency,
    claimed: Claimed,
    record: dict[str, Any] | None,
    started_at: datetime,
) -> _Result:
    if record is None:
        return _end(started_at, "cancelled", "withheld", error="event no longer stored")
    with span("policy.release", attributes={"hub.agency": agency.name}):
        released = await release(
            deps.policy,
            recipient=Recipient(
                id=agency.name,
                kind="agency",
                jurisdictions=agency.jurisdictions,
                clearance=agency.clearance,
            ),
            purpose=agency.purpose,
            data_class="detection_event",
            record=record,
            hash_master_key=deps.hash_key,
            cacheable=True,  # a batch shares a few verdicts: one evaluation each
            copy=False,  # decoded for this delivery alone (delivery_record)
        )
    if released.error is not None:
        # Policy failed closed: not a verdict on this event; try again later.
        return _retry(deps, claimed, started_at, f"policy unavailable: {released.error}", None)
    if not released.allowed or released.record is None:
        return _end(
            started_at, "withheld", "withheld", error=released.reason, decision=released.decision_id
        )
    message = Message(
        delivery_id=claimed.id,
        agency=agency.name,
        attempt=claimed.attempt,
        decision_id=released.decision_id,
        record=released.record,
    )
    return await _send(deps, agency, claimed, message, started_at)


async def _send(
    deps: DeliveryDeps, agency: Agency, claimed: Claimed, message: Message, started_at: datetime
) -> _Result:
    decision = message.decision_id
    adapter = deps.adapters.get(agency.kind)
    if adapter is None:
        error = f"no adapter of kind {agency.kind!r} installed"
        return _end(started_at, "dead", "dead", error=error, decision=decision)
    try:
        config = deps.directory.config(agency)
        # Our own bound, inside the lease: an adapter that ignores its timeout cannot hold a
        # row past the moment another worker may claim it again.
        async with asyncio.timeout(deps.lease_seconds * 0.6):
            attributes = {"hub.agency": agency.name, "hub.delivery_id": str(claimed.id)}
            with span(f"adapter {agency.kind}", kind=SpanKind.CLIENT, attributes=attributes):
                # The agency gets this span's W3C `traceparent` (adapters send it on).
                message = msgspec.structs.replace(message, trace_context=trace_context())
                receipt = await adapter.deliver(message, config)
    except ConfigError as exc:
        return _end(started_at, "dead", "dead", error=f"config: {exc}", decision=decision)
    except DeliveryError as exc:
        if not exc.retryable:
            return _end(
                started_at, "dead", "dead", error=str(exc), code=exc.status_code, decision=decision
            )
        return _retry(
            deps, claimed, started_at, str(exc), exc.status_code, exc.retry_after, decision,
            schedule=agency.retry_schedule,
        )  # fmt: skip
    except TimeoutError:
        return _retry(
            deps, claimed, started_at, "attempt timed out", None, None, decision,
            schedule=agency.retry_schedule,
        )  # fmt: skip
    except Exception as exc:  # an adapter bug must not lose the row: retry, then dead letter
        log.exception("adapter raised an unclassified error", agency=agency.name)
        error = f"adapter error: {type(exc).__name__}"
        return _retry(
            deps, claimed, started_at, error, None, None, decision, schedule=agency.retry_schedule
        )
    return _delivered(started_at, receipt, decision)


def _delivered(started_at: datetime, receipt: Receipt, decision: str) -> _Result:
    return _Result(
        status="delivered",
        outcome="delivered",
        started_at=started_at,
        duration_ms=0,
        status_code=receipt.status_code,
        decision_id=decision,
        receipt={
            "status_code": receipt.status_code,
            "reference": receipt.reference,
            "detail": receipt.detail[:MAX_DETAIL_CHARS],
        },
    )


def _end(
    started_at: datetime,
    status: str,
    outcome: str,
    *,
    error: str,
    code: int | None = None,
    decision: str | None = None,
) -> _Result:
    return _Result(
        status=status,
        outcome=outcome,
        started_at=started_at,
        duration_ms=0,
        status_code=code,
        error=error[:MAX_DETAIL_CHARS],
        decision_id=decision,
    )


def _retry(
    deps: DeliveryDeps,
    claimed: Claimed,
    started_at: datetime,
    error: str,
    code: int | None,
    retry_after: float | None = None,
    decision: str | None = None,
    *,
    schedule: Sequence[float] | None = None,
) -> _Result:
    if claimed.attempt >= claimed.attempt_limit:
        error = f"attempts exhausted ({claimed.attempt}): {error}"
        result = _end(started_at, "dead", "dead", error=error, code=code, decision=decision)
    else:
        result = _end(started_at, "retrying", "retry", error=error, code=code, decision=decision)
        delay = deps.backoff.delay(claimed.attempt, retry_after, schedule=schedule)
        result = msgspec.structs.replace(result, retry_in_seconds=delay)
    return msgspec.structs.replace(result, agency_failure=not error.startswith("policy"))


async def _after(
    deps: DeliveryDeps, agency: Agency, permit: Permit, results: Sequence[_Result]
) -> None:
    """Feed the breaker once per batch (any success means the agency is alive) and, when an
    agency has failed for too long, pause it."""
    if any(result.status == "delivered" for result in results):
        await deps.breaker.record_success(agency.id, permit)
        deps.metrics.breaker_open.labels(agency.name).set(0)
        return
    failed = sum(result.agency_failure for result in results)
    if not failed:
        await deps.breaker.release_probe(agency.id, permit)
        return
    failures, failing_since = await deps.breaker.record_failure(agency.id, count=failed)
    if failures >= deps.breaker.threshold:
        deps.metrics.breaker_open.labels(agency.name).set(1)
    if time.time() - failing_since >= deps.auto_pause_seconds:
        await _auto_pause(deps, agency, failing_since)


async def _auto_pause(deps: DeliveryDeps, agency: Agency, failing_since: float) -> None:
    minutes = int((time.time() - failing_since) // 60)
    reason = f"auto-paused: failing for {minutes} min without a successful delivery"
    async with deps.db.transaction() as conn:
        paused = await repository.set_agency_status(
            conn, agency.id, status="paused", reason=reason, only_if=["active"]
        )
        if paused is None:
            return  # another worker paused it first
        await append_entry(
            conn,
            AuditEntry(
                actor="system:delivery",
                action="agency.auto_pause",
                target=f"agency:{agency.name}",
                detail={"failing_since": int(failing_since), "reason": reason},
            ),
        )
    deps.directory.forget()
    deps.metrics.auto_paused.labels(agency.name).inc()
    # The alert: operators page on hub_delivery_agency_auto_paused_total; the log says why.
    log.error("agency auto-paused", agency=agency.name, reason=reason, alert="AgencyAutoPaused")
