"""Policy decisions: evaluate, decode, fail closed, mask, log.

`PolicyService.decide` is the one way the hub asks policy anything. Every call returns a
typed result and its `DecisionRecord`; whatever goes wrong (no bundle, an evaluation error,
a result that does not match the contract, the time budget, a full decision log) becomes
the entrypoint's deny-shaped default, a log line and a metric. Evaluation is synchronous
and in-process (tens to hundreds of microseconds), so it runs on the caller's thread; an
evaluation that overruns the budget cannot be interrupted there (the wasm engine interrupts
its own), but its answer is discarded and the decision fails closed.
"""

import asyncio
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar, runtime_checkable

import msgspec
import structlog

from hub.kit.clock import Clock, utcnow
from hub.kit.pointers import keys_at, pointer_tokens
from hub.policy.errors import DecisionLogFullError, PolicyEvaluationError
from hub.policy.metrics import PolicyMetrics, default_metrics
from hub.policy.ports import PolicyEngine
from hub.policy.schemas import (
    AuthzResult,
    DecisionRecord,
    GroupVerdict,
    IngestInput,
    IngestResult,
    ReleaseResult,
    RetentionResult,
)

T = TypeVar("T", bound=msgspec.Struct)

MASK_ENTRYPOINT = "system/log/mask"
MASKED = "**masked**"
FULLY_MASKED = {"masked": "all"}
# Fail-closed retention: keep (about a century) and hold; an error must never delete data.
FAIL_CLOSED_KEEP_DAYS = 36_500

# How long a replaced engine stays open for requests that pinned it (hub/policy/pinning.py):
# longer than any ordinary request; a longer one (a live feed) moves to the new engine.
RETIRE_GRACE_SECONDS = 30.0
# A decision that took longer than this (it evaluated rego) lets the event loop go before its
# caller goes on (`PolicyService.decide`).
YIELD_AFTER_NS = 50_000

log = structlog.get_logger("hub.policy")

# The engine a request decides with, pinned when it starts: (service, engine, the request's
# task). A task started during the request copies this context; the task check keeps such a
# background task (a flusher, a fan-out) from deciding with the pinned engine forever.
_PINNED: ContextVar[tuple["PolicyService", PolicyEngine | None, object] | None] = ContextVar(
    "hub_policy_pinned", default=None
)


class DecisionSink(Protocol):
    """Where decision records go (the `DecisionLog`, or a list in tests)."""

    async def record(self, record: DecisionRecord) -> None:
        """Take one record, or raise `DecisionLogFullError`."""
        ...


@runtime_checkable
class _Closable(Protocol):
    def close(self) -> None: ...


class _Failure(Exception):
    """Why a decision failed closed: `cause` is the metric label, the message the detail."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(detail)
        self.cause = cause


class _MaskRule(msgspec.Struct, frozen=True):
    """OPA's object form of a mask entry; only the pointer is used."""

    path: str


_MASK_TYPE = list[str | _MaskRule]


class _Mask(msgspec.Struct, frozen=True):
    """An entrypoint's mask, parsed once per bundle: the pointers' tokens, and whether any
    may reach into the logged result (then the result is copied for each record)."""

    pointers: tuple[tuple[str, ...], ...]
    reaches_result: bool

    @classmethod
    def of(cls, pointers: list[str]) -> "_Mask":
        """Parse pointers (a non-pointer, like "", reaches nothing, as in `mask_pointer`)."""
        parsed = tuple(t for t in (pointer_tokens(p) for p in pointers) if t)
        return cls(pointers=parsed, reaches_result=any(t[0] in ("result", "*") for t in parsed))


class _Counters(msgspec.Struct, frozen=True):
    """An entrypoint's metric children, looked up once."""

    latency: Any
    ok: Any


class BoundedCache:
    """A small LRU map (bounded: a cache must never grow with traffic)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any) -> Any:
        """The value for key (marking it recently used), or None."""
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        """Store, evicting the least recently used entry past the size."""
        if self.size <= 0:
            return
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def clear(self) -> None:
        """Forget everything (a new bundle may answer differently)."""
        self._items.clear()


class PolicyService:
    """Holds the active engine and makes every decision through it."""

    def __init__(
        self,
        engine: PolicyEngine | None,
        *,
        sink: DecisionSink,
        eval_budget_ms: int,
        clock: Clock = utcnow,
        metrics: PolicyMetrics | None = None,
        cache_size: int = 10_000,
        retire_grace_seconds: float = RETIRE_GRACE_SECONDS,
    ) -> None:
        self._engine = engine
        self._retire_grace = retire_grace_seconds
        # Replaced engines still open for the requests that pinned them, by id.
        self._retiring: dict[int, PolicyEngine] = {}
        self._sink = sink
        self._budget_ns = eval_budget_ms * 1_000_000
        self._clock = clock
        self._metrics = metrics or default_metrics()
        self._mask_cache: dict[tuple[int, str], _Mask] = {}
        self._results: BoundedCache = BoundedCache(cache_size)
        # Logged forms of cached results (a page's ~40 decisions reuse a handful of results).
        self._logged_results: BoundedCache = BoundedCache(cache_size)
        self._counters: dict[str, _Counters] = {}

    @property
    def revision(self) -> str | None:
        """The revision this request decides with (the pinned engine's, else the active
        bundle's), or None before any bundle is active."""
        engine = self._current()
        return None if engine is None else engine.revision

    def activate(self, engine: PolicyEngine) -> PolicyEngine | None:
        """Make `engine` the one every following decision uses; returns the one it replaced.

        One reference swap: a decision already running finishes on the engine it started
        with, and a request that pinned the replaced engine (`pinned`) keeps deciding with it,
        so one request never mixes two revisions. The replaced engine is closed (a wasm
        engine releases its instances) after the grace period, when no ordinary request can
        still hold it.
        """
        previous, self._engine = self._engine, engine
        self._forget()
        if previous is not None and previous is not engine:
            self._retire(previous)
        return previous

    def _forget(self) -> None:
        self._mask_cache.clear()
        self._results.clear()
        self._logged_results.clear()

    def _retire(self, previous: PolicyEngine) -> None:
        self._retiring[id(previous)] = previous
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a script): nothing can be pinned across this call
            loop = None
        if loop is None or self._retire_grace <= 0:
            self._close(previous)
        else:
            loop.call_later(self._retire_grace, self._close, previous)

    def _close(self, previous: PolicyEngine) -> None:
        self._retiring.pop(id(previous), None)
        # Caches are keyed by id(engine): entries the pinned engine added after the swap must
        # go before its id can be reused by another engine.
        self._forget()
        if previous is not self._engine and isinstance(previous, _Closable):
            previous.close()

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """Within this block (one request), every decision uses the engine active at its
        start, even if a new bundle is activated meanwhile."""
        token = _PINNED.set((self, self._engine, _task()))
        try:
            yield
        finally:
            _PINNED.reset(token)

    def _current(self) -> PolicyEngine | None:
        """The pinned engine while it is still open, else the active one."""
        pin = _PINNED.get()
        if pin is None or pin[0] is not self or pin[2] is not _task():
            return self._engine
        engine = pin[1]
        if engine is self._engine or (engine is not None and id(engine) in self._retiring):
            return engine
        return self._engine  # pinned past the grace period (a long stream): the new bundle

    async def decide(
        self,
        entrypoint: str,
        input: msgspec.Struct,
        *,
        result_type: type[T],
        cache_key: bytes | None = None,
    ) -> tuple[T, DecisionRecord]:
        """Evaluate `entrypoint` on `input` into `result_type`, failing closed; log it.

        With `cache_key` (the input fields the answer depends on), a successful result is
        reused for the same key under the same bundle. A cached decision is still a decision:
        it gets its own id and log record, only the evaluation is skipped.
        """
        engine = self._current()  # one engine for the whole decision, even across a swap
        input_json = msgspec.json.encode(input)
        error: _Failure | None = None
        start = time.perf_counter_ns()
        key = None if cache_key is None else (id(engine), entrypoint, cache_key)
        cached = None if key is None else self._results.get(key)
        try:
            result = (
                cached
                if cached is not None
                else self._evaluate(engine, entrypoint, input_json, input, result_type)
            )
            if time.perf_counter_ns() - start > self._budget_ns:
                raise _Failure("timeout", f"evaluation overran {self._budget_ns // 1000} µs")
            if key is not None and cached is None:
                self._results.put(key, result)
        except _Failure as failure:
            result, error = fail_closed(result_type, input, cause=failure.cause), failure
        elapsed = time.perf_counter_ns() - start
        record = self._record(
            engine, entrypoint, input_json, result, error, elapsed, reused=key is not None
        )
        try:
            await self._sink.record(record)
        except DecisionLogFullError as exc:
            result = fail_closed(result_type, input, cause="log_full")
            error = _Failure("log_full", str(exc))
            record = msgspec.structs.replace(
                record, result=msgspec.to_builtins(result), error=f"log_full: {exc}"
            )
        self._count(entrypoint, error, record, elapsed)
        if elapsed > YIELD_AFTER_NS:
            # An evaluation holds the event loop (~0.1 ms an ingest group, ~1 ms a release
            # verdict), and callers decide in loops (a page's verdicts, an audience's fill):
            # without letting the loop go between them, one page of cold verdicts held an
            # ingesting API process's loop for 26-40 ms in one step (bench/README.md,
            # seventeenth session). A cached answer (microseconds) goes straight on.
            await asyncio.sleep(0)
        return result, record

    def _evaluate(
        self,
        engine: PolicyEngine | None,
        entrypoint: str,
        input_json: bytes,
        input: msgspec.Struct,
        result_type: type[T],
    ) -> T:
        if isinstance(input, IngestInput) and result_type is IngestResult and engine is not None:
            return self._evaluate_groups(engine, entrypoint, input)  # type: ignore[return-value]
        return self._evaluate_once(engine, entrypoint, input_json, input, result_type)

    def _evaluate_groups(
        self, engine: PolicyEngine, entrypoint: str, input: IngestInput
    ) -> IngestResult:
        """Ingest verdicts are per group, on the group and the node's status alone (ADR 0015):
        a batch evaluates, in one call, only the groups this bundle has not judged yet (a
        group cost ~100 µs of rego-cpp, a third of ingest's CPU per batch)."""
        keys = [
            (id(engine), entrypoint, input.node.status, msgspec.json.encode(group))
            for group in input.groups
        ]
        verdicts: list[GroupVerdict | None] = [self._results.get(key) for key in keys]
        missing = [g for g, v in zip(input.groups, verdicts, strict=True) if v is None]
        if missing:
            part = IngestInput(node=input.node, groups=missing)
            judged = iter(
                self._evaluate_once(
                    engine, entrypoint, msgspec.json.encode(part), part, IngestResult
                ).groups
            )
            for index, verdict in enumerate(verdicts):
                if verdict is None:
                    verdicts[index] = fresh = next(judged)
                    self._results.put(keys[index], fresh)
        return IngestResult(groups=[v for v in verdicts if v is not None])

    def _evaluate_once(
        self,
        engine: PolicyEngine | None,
        entrypoint: str,
        input_json: bytes,
        input: msgspec.Struct,
        result_type: type[T],
    ) -> T:
        if engine is None:
            raise _Failure("no_bundle", "no policy bundle is active")
        try:
            raw = engine.evaluate(entrypoint, input_json)
        except Exception as exc:  # any engine failure denies; never a 500
            raise _Failure("evaluation", str(exc) or type(exc).__name__) from None
        try:
            result = msgspec.json.decode(raw, type=result_type)
        except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
            raise _Failure(
                "schema", f"result does not match {result_type.__name__}: {exc}"
            ) from None
        _check_result(input, result)
        return result

    def _record(
        self,
        engine: PolicyEngine | None,
        entrypoint: str,
        input_json: bytes,
        result: msgspec.Struct,
        error: _Failure | None,
        elapsed_ns: int,
        *,
        reused: bool = False,
    ) -> DecisionRecord:
        """The decision's log record; `reused` says the result object is (or is now) in the
        result cache, answering other decisions too."""
        masked = self._mask(engine, entrypoint, input_json, result, reused=reused and not error)
        return DecisionRecord(
            decision_id=new_decision_id(),
            entrypoint=entrypoint,
            revision="" if engine is None else engine.revision,
            at=self._clock(),
            latency_us=elapsed_ns // 1000,
            input=masked["input"],
            result=masked["result"],
            error=None if error is None else f"{error.cause}: {error}",
        )

    def _mask(
        self,
        engine: PolicyEngine | None,
        entrypoint: str,
        input_json: bytes,
        result: msgspec.Struct,
        *,
        reused: bool,
    ) -> dict[str, Any]:
        """The logged document with `system/log/mask`'s pointers masked; the input fully
        redacted when the mask cannot be evaluated (the log must never hold what the mask
        hides)."""
        try:
            mask = self._mask_rules(engine, entrypoint)
        except Exception as exc:  # a broken mask must not break the decision
            self._metrics.mask_failures.labels(entrypoint).inc()
            log.warning("decision log mask failed", entrypoint=entrypoint, error=str(exc)[:200])
            return {"input": dict(FULLY_MASKED), "result": msgspec.to_builtins(result)}
        document = {
            "input": msgspec.json.decode(input_json),
            "result": self._logged_result(result, shared=reused and not mask.reaches_result),
        }
        for tokens in mask.pointers:
            _mask_tokens(document, tokens)
        return document

    def _logged_result(self, result: msgspec.Struct, *, shared: bool) -> Any:
        """The result as logged. A cached result is the same object for every decision it
        answers, so its logged form is built once and shared, unless the mask may write
        into it (then each record gets its own copy to mask)."""
        if not shared:
            return msgspec.to_builtins(result)
        hit = self._logged_results.get(id(result))
        if hit is not None and hit[0] is result:  # the same object, not a reused id
            return hit[1]
        logged = msgspec.to_builtins(result)
        self._logged_results.put(id(result), (result, logged))
        return logged

    def _mask_rules(self, engine: PolicyEngine | None, entrypoint: str) -> "_Mask":
        """The mask of an entrypoint under this engine, evaluated once per bundle.

        The mask's input is `{"entrypoint": ...}` only (policies/README.md): what to hide is a
        property of the entrypoint, not of one request, so it is cached per engine instead of
        costing a second evaluation over the whole input on every decision.
        """
        if engine is None:
            raise PolicyEvaluationError("no policy bundle is active")
        key = (id(engine), entrypoint)
        cached = self._mask_cache.get(key)
        if cached is None:
            raw = engine.evaluate(MASK_ENTRYPOINT, msgspec.json.encode({"entrypoint": entrypoint}))
            rules = msgspec.json.decode(raw, type=_MASK_TYPE)
            cached = self._mask_cache[key] = _Mask.of(
                [rule if isinstance(rule, str) else rule.path for rule in rules]
            )
        return cached

    def _count(
        self, entrypoint: str, error: _Failure | None, record: DecisionRecord, elapsed_ns: int
    ) -> None:
        counters = self._counters.get(entrypoint)
        if counters is None:  # labels() costs microseconds; a page makes dozens of decisions
            counters = self._counters[entrypoint] = _Counters(
                latency=self._metrics.latency.labels(entrypoint),
                ok=self._metrics.decisions.labels(entrypoint, "ok"),
            )
        counters.latency.observe(elapsed_ns / 1e9)
        if error is None:
            counters.ok.inc()
            return
        self._metrics.decisions.labels(entrypoint, "failed_closed").inc()
        self._metrics.failed_closed.labels(entrypoint, error.cause).inc()
        log.warning(
            "policy decision failed closed",
            entrypoint=entrypoint,
            decision_id=record.decision_id,
            revision=record.revision,
            cause=error.cause,
            error=str(error)[:500],
        )


def _task() -> object:
    """The running task (None outside one): what a pin belongs to."""
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop
        return None


def _check_result(input: msgspec.Struct, result: msgspec.Struct) -> None:
    """Contract checks the result's schema cannot express."""
    if (
        isinstance(input, IngestInput)
        and isinstance(result, IngestResult)
        and len(result.groups) != len(input.groups)
    ):
        raise _Failure(
            "schema",
            f"{len(result.groups)} verdicts for {len(input.groups)} groups",
        )


def _deny_authz(input: msgspec.Struct, reason: str) -> AuthzResult:
    return AuthzResult(allow=False, reason=reason)


def _quarantine_all(input: msgspec.Struct, reason: str) -> IngestResult:
    # Quarantine, not drop: the edge forgets an event once the hub has answered, so a drop
    # would lose it for good; quarantined events are stored but never routed, so nothing is
    # released on a policy error and they can be reviewed once policy works again.
    if not isinstance(input, IngestInput):
        raise PolicyEvaluationError("hub/ingest needs an IngestInput to fail closed")
    return IngestResult(
        groups=[GroupVerdict(action="quarantine", reason=reason) for _ in input.groups]
    )


def _deny_release(input: msgspec.Struct, reason: str) -> ReleaseResult:
    return ReleaseResult(allow=False, reason=reason)


def _keep_and_hold(input: msgspec.Struct, reason: str) -> RetentionResult:
    return RetentionResult(keep_days=FAIL_CLOSED_KEEP_DAYS, hold=True, reason=reason)


_FAIL_CLOSED: dict[type[msgspec.Struct], Callable[[msgspec.Struct, str], msgspec.Struct]] = {
    AuthzResult: _deny_authz,
    IngestResult: _quarantine_all,
    ReleaseResult: _deny_release,
    RetentionResult: _keep_and_hold,
}


def fail_closed(result_type: type[T], input: msgspec.Struct, *, cause: str) -> T:
    """The deny-shaped result of an entrypoint: deny, quarantine, or keep and hold.

    The reason names only the cause (clients may see it); the detail is in the record.
    Raises `PolicyEvaluationError` for a result type without a safe default.
    """
    build = _FAIL_CLOSED.get(result_type)
    if build is None:
        raise PolicyEvaluationError(f"no fail-closed default for {result_type.__name__}")
    result = build(input, f"policy error: {cause}")
    if not isinstance(result, result_type):
        raise PolicyEvaluationError(f"fail-closed default is not a {result_type.__name__}")
    return result


def mask_pointer(document: Any, pointer: str) -> None:
    """Replace every value `pointer` reaches (`*` = every key or element) with "**masked**",
    in place; a pointer that reaches nothing changes nothing."""
    _mask_tokens(document, pointer_tokens(pointer))


def _mask_tokens(document: Any, tokens: tuple[str, ...]) -> None:
    """Mask every value the tokens reach, walking without building paths: a decision's
    logged document is masked on every decision, and most pointers reach nothing."""
    if not tokens:
        return
    frontier = [document]
    for step in tokens[:-1]:
        frontier = [node[key] for node in frontier for key in keys_at(node, step)]
        if not frontier:
            return
    last = tokens[-1]
    for node in frontier:
        for key in keys_at(node, last):
            node[key] = MASKED


def new_decision_id() -> str:
    """A time-ordered id (UUIDv7: 48-bit Unix milliseconds, 12 bits of sub-millisecond time,
    62 random bits), so ids sort by time and index appends stay cheap. The sub-millisecond
    bits (RFC 9562, section 6.2, method 3) keep two decisions of one request in order now
    that a cached decision takes well under a millisecond."""
    now = time.time_ns()
    millis, fraction = divmod(now, 1_000_000)
    sub_ms = fraction * 4096 // 1_000_000  # ~244 ns steps
    rand = int.from_bytes(os.urandom(8), "big")
    value = (millis & ((1 << 48) - 1)) << 80 | 0x7 << 76 | sub_ms << 64
    value |= 0b10 << 62 | rand & ((1 << 62) - 1)
    h = f"{value:032x}"  # str(uuid.UUID(int=value)), without building the UUID object
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
