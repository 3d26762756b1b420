"""The agency registry: add, list, pause and resume agencies, and the worker's cached view.

An agency's adapter configuration is validated by its adapter when it is registered (and
again, cached, before deliveries), so a typo is refused at the door, not at 3 a.m. Its secret
fields are stored sealed (hub/delivery/secrets.py) and opened only to send.
"""

import time
from collections.abc import Mapping
from typing import Any
from uuid import UUID, uuid4

import msgspec

from adapters.base import Adapter, ConfigError, DeliveryError, Message
from adapters.egress import EgressRefusedError
from hub.audit import AuditAppender, AuditEntry, append_entry
from hub.delivery import repository
from hub.delivery.breaker import CircuitBreaker
from hub.delivery.queue import DeliveryQueue
from hub.delivery.schemas import (
    Agency,
    AgencyCreate,
    AgencyHealth,
    AgencyRead,
    AgencyUpdate,
    ResealResult,
    RetrySchedule,
)
from hub.delivery.secrets import (
    KeySource,
    clear_paths,
    open_config,
    seal_config,
    sealed_by_old_key,
)
from hub.kit.clock import utcnow
from hub.kit.db import Database
from hub.kit.errors import ConflictError, NotFoundError, ValidationError
from hub.retention import process_keys

# How stale the worker's view of agencies may be: a pause reaches every worker this fast.
DIRECTORY_TTL_SECONDS = 2.0
# Rows made due at once on resume; reconcile takes care of the rest.
RESUME_BATCH = 50_000
# All `agencies test` says of a failure: its kind and cause would make it a port scanner.
TEST_FAILED = "the agency did not take the test message"


def validate_config(adapters: Mapping[str, Adapter], kind: str, config: Mapping[str, Any]) -> Any:
    """The adapter's parsed configuration; 422 naming the field when it is wrong."""
    adapter = adapters.get(kind)
    if adapter is None:
        raise ValidationError(
            f"no adapter of kind {kind!r} is installed (have: {', '.join(sorted(adapters))})",
            code="adapter_unknown",
        )
    try:
        return adapter.parse_config(config)
    except ConfigError as exc:
        raise ValidationError(f"config: {exc}", code="adapter_config") from None


def check_retry_schedule(schedule: list[float] | None) -> None:
    """422 unless the schedule is 1-20 waits of more than 0 and at most 86,400 seconds (the
    HTTP body is checked on decoding; this covers callers that build the Struct in code)."""
    if schedule is None:
        return
    try:
        msgspec.convert(schedule, RetrySchedule)
    except msgspec.ValidationError as exc:
        raise ValidationError(f"retry_schedule: {exc}", code="agency_retry_schedule") from None


async def check_egress(adapter: Adapter, parsed: Any) -> None:
    """422 unless every URL of the configuration is acceptable and resolves, now, only to
    addresses the egress policy permits (connects are checked again, against rebinding)."""
    for url in adapter.urls(parsed):
        try:
            await adapter.egress.check_endpoint(url)
        except EgressRefusedError as exc:
            raise ValidationError(
                f"config: endpoint {exc}; only public addresses and HUB_AGENCY_ALLOWED_NETWORKS"
                " are reachable",
                code="agency_endpoint_refused",
            ) from None


def secret_paths(adapter: Adapter) -> tuple[str, ...]:
    """The configuration fields `adapter` declares secret (none when it declares nothing)."""
    return tuple(getattr(adapter, "secret_paths", ()))


def opened_config(agency: Agency, *, keys: KeySource = process_keys) -> dict[str, Any]:
    """The agency's configuration with its sealed fields opened (to send, never to show)."""
    return open_config(agency.config, keys=keys(), agency_id=agency.id)


async def add_agency(
    db: Database,
    adapters: Mapping[str, Adapter],
    create: AgencyCreate,
    *,
    actor: str,
    keys: KeySource = process_keys,
) -> AgencyRead:
    """Register an agency after its adapter accepted the configuration and its endpoints;
    the configuration's secret fields are stored sealed."""
    check_retry_schedule(create.retry_schedule)
    parsed = validate_config(adapters, create.kind, create.config)
    await check_egress(adapters[create.kind], parsed)
    endpoint = adapters[create.kind].endpoint(parsed)
    agency_id = uuid4()
    stored = seal_config(
        create.config,
        paths=secret_paths(adapters[create.kind]),
        keys=keys(),
        agency_id=agency_id,
    )
    async with db.transaction() as conn:
        agency = await repository.insert_agency(
            conn,
            agency_id=agency_id,
            create=msgspec.structs.replace(create, config=stored),
            endpoint=endpoint,
        )
        if agency is None:
            raise ConflictError(
                f"an agency named {create.name!r} already exists", code="agency_exists"
            )
        await append_entry(
            conn,
            AuditEntry(
                actor=actor,
                action="agency.add",
                target=f"agency:{agency.name}",
                detail={"kind": agency.kind, "endpoint": endpoint},
            ),
        )
    return agency


async def reseal_agencies(
    db: Database, adapters: Mapping[str, Adapter], *, actor: str, keys: KeySource = process_keys
) -> ResealResult:
    """Seal every agency's secret fields under the current master key: clear ones (stored
    before sealing existed) and ones an older key sealed. Run after a key rotation."""
    ring = keys()
    names: list[str] = []
    async with db.transaction() as conn:
        for agency_id, kind, config in await repository.lock_agency_configs(conn):
            adapter = adapters.get(kind)
            paths = secret_paths(adapter) if adapter is not None else ()
            if clear_paths(config, paths) or sealed_by_old_key(config, current_id=ring.current_id):
                sealed = seal_config(config, paths=paths, keys=ring, agency_id=agency_id)
                names.append(await repository.update_agency_config(conn, agency_id, sealed))
        await append_entry(
            conn,
            AuditEntry(
                actor=actor,
                action="agency.reseal",
                target="agency:*",
                detail={"key": ring.current_id, "agencies": sorted(names)},
            ),
        )
    return ResealResult(key=ring.current_id, resealed=sorted(names))


async def list_agencies(db: Database) -> list[AgencyRead]:
    """Every agency, by name."""
    async with db.transaction() as conn:
        return [read for read, _ in await repository.select_agencies(conn)]


async def get_agency(db: Database, ref: str) -> tuple[AgencyRead, Agency]:
    """An agency by name or id, or 404."""
    async with db.transaction() as conn:
        found = await repository.find_agency(conn, ref)
    if found is None:
        raise NotFoundError(f"no agency {ref!r}", code="agency_not_found")
    return found


async def pause_agency(db: Database, ref: str, *, reason: str, actor: str) -> AgencyRead:
    """Stop deliveries to an agency (rows keep accumulating; nothing is lost)."""
    read, _ = await get_agency(db, ref)
    async with db.transaction() as conn:
        paused = await repository.set_agency_status(
            conn, read.id, status="paused", reason=reason[:500], only_if=["active", "paused"]
        )
        if paused is None:
            raise ConflictError(f"agency {read.name!r} is {read.status}", code="agency_state")
        await append_entry(
            conn,
            AuditEntry(
                actor=actor,
                action="agency.pause",
                target=f"agency:{read.name}",
                detail={"reason": reason[:500]},
            ),
        )
    return paused


async def resume_agency(
    db: Database, breaker: CircuitBreaker, queue: DeliveryQueue, ref: str, *, actor: str
) -> AgencyRead:
    """Resume deliveries: forget the breaker's failures and queue what waited."""
    read, _ = await get_agency(db, ref)
    async with db.transaction() as conn:
        resumed = await repository.set_agency_status(
            conn, read.id, status="active", reason=None, only_if=["paused", "active"]
        )
        if resumed is None:
            raise ConflictError(f"agency {read.name!r} is {read.status}", code="agency_state")
        due = await repository.due_of_agency(conn, read.id, limit=RESUME_BATCH)
        await append_entry(
            conn,
            AuditEntry(
                actor=actor,
                action="agency.resume",
                target=f"agency:{read.name}",
                detail={"queued": due},
            ),
        )
    await breaker.reset(read.id)
    await queue.wake_now([read.id])  # jobs an open circuit held wait no longer
    return resumed


async def update_agency(
    db: Database, queue: DeliveryQueue, ref: str, update: AgencyUpdate, *, actor: str
) -> AgencyRead:
    """Change an agency's settings (today its ordering), audited; the agency is woken so its
    waiting rows move under the new setting. Workers see the change within
    `DIRECTORY_TTL_SECONDS`; rows one claimed before that go out under the old setting."""
    read, _ = await get_agency(db, ref)
    if update.ordering is None or update.ordering == read.ordering:
        return read
    async with db.transaction() as conn:
        updated = await repository.update_agency_ordering(conn, read.id, update.ordering)
        await append_entry(
            conn,
            AuditEntry(
                actor=actor,
                action="agency.update",
                target=f"agency:{read.name}",
                detail={"ordering": update.ordering, "was": read.ordering},
            ),
        )
    await queue.wake([read.id])
    return updated


async def agency_health(db: Database, breaker: CircuitBreaker) -> list[AgencyHealth]:
    """Each agency with its breaker and its deliveries counted by status (from a replica
    within the lag bound: counts for a screen, one snapshot)."""
    async with db.snapshot() as conn:
        agencies = await repository.select_agencies(conn)
        counts = await repository.status_counts(conn)
        blocked = {
            read.id: await repository.blocked_heads(
                conn, read.id, read.name, per_camera=read.ordering == "camera"
            )
            for read, _ in agencies
            if read.ordering != "none"
        }
    return [
        AgencyHealth(
            agency=read,
            breaker=await breaker.state(read.id, read.name),
            counts=counts.get(read.id, {}),
            blocked=blocked.get(read.id, []),
        )
        for read, _ in agencies
    ]


class AgencyDirectory:
    """The worker's view of agencies: refreshed from PostgreSQL at most every few seconds,
    with each adapter configuration parsed once per change."""

    def __init__(
        self, db: Database, adapters: Mapping[str, Adapter], *, keys: KeySource = process_keys
    ) -> None:
        self.db = db
        self.adapters = adapters
        self._keys = keys
        self._agencies: dict[UUID, Agency] = {}
        self._loaded_at = float("-inf")
        self._configs: dict[UUID, tuple[bytes, Any]] = {}

    async def get(self, agency_id: UUID, *, fresh: bool = False) -> Agency | None:
        """The agency, at most `DIRECTORY_TTL_SECONDS` old (reloaded at once if unknown or
        when `fresh` is asked for)."""
        stale = time.monotonic() - self._loaded_at > DIRECTORY_TTL_SECONDS
        if fresh or stale or agency_id not in self._agencies:
            await self.refresh()
        return self._agencies.get(agency_id)

    async def refresh(self) -> None:
        """Reload every agency."""
        async with self.db.transaction() as conn:
            rows = await repository.select_agencies(conn)
        self._agencies = {agency.id: agency for _, agency in rows}
        self._loaded_at = time.monotonic()

    def forget(self) -> None:
        """Drop the cached view (an operator changed an agency in this process)."""
        self._loaded_at = float("-inf")

    def config(self, agency: Agency) -> Any:
        """The agency's parsed adapter configuration, its secrets opened (ConfigError if it no
        longer parses); parsed once per change of the stored configuration."""
        raw = msgspec.json.encode(agency.config)
        cached = self._configs.get(agency.id)
        if cached is not None and cached[0] == raw:
            return cached[1]
        parsed = self.adapters[agency.kind].parse_config(opened_config(agency, keys=self._keys))
        self._configs[agency.id] = (raw, parsed)
        return parsed


class TestResult(msgspec.Struct, frozen=True, kw_only=True):
    """What `agencies test` shows: the receipt, or the classified error."""

    agency: str
    delivered: bool
    delivery_id: UUID
    status_code: int | None = None
    reference: str | None = None
    retryable: bool | None = None
    error: str | None = None


async def send_test(
    audit: AuditAppender,
    adapters: Mapping[str, Adapter],
    agency: Agency,
    *,
    actor: str,
    keys: KeySource = process_keys,
) -> TestResult:
    """Send a signed test message (no real data, flagged `test`) straight through the
    agency's adapter, bypassing the ledger, audit it and report what came back (a failure
    only as retryable or not, with the agency's HTTP status when it answered one). The entry
    is the request's only write, so it goes through the process's appender (ADR 0025)."""
    parsed = validate_config(adapters, agency.kind, opened_config(agency, keys=keys))
    await check_egress(adapters[agency.kind], parsed)
    result = await _try_test(adapters[agency.kind], agency, parsed)
    await audit.append(
        AuditEntry(
            actor=actor,
            action="agency.test",
            target=f"agency:{agency.name}",
            detail={
                "delivery_id": str(result.delivery_id),
                "delivered": result.delivered,
                "status_code": result.status_code,
            },
        )
    )
    return result


async def _try_test(adapter: Adapter, agency: Agency, parsed: Any) -> TestResult:
    delivery_id = uuid4()
    now = utcnow()
    message = Message(
        delivery_id=delivery_id,
        agency=agency.name,
        attempt=1,
        decision_id="test",
        record={
            "event_id": str(delivery_id),
            "camera_id": "hub-test",
            "captured_at": now.isoformat(),
            "detections": [],
            "media": [],
            "node_id": str(UUID(int=0)),
        },
        test=True,
    )
    try:
        receipt = await adapter.deliver(message, parsed)
    except DeliveryError as exc:
        return TestResult(
            agency=agency.name,
            delivered=False,
            delivery_id=delivery_id,
            status_code=exc.status_code,
            retryable=exc.retryable,
            error=TEST_FAILED,
        )
    return TestResult(
        agency=agency.name,
        delivered=True,
        delivery_id=delivery_id,
        status_code=receipt.status_code,
        reference=receipt.reference,
    )
