"""`hub agencies` and `hub deliveries`: the agency registry, dead letters and replays."""

import base64
import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import click
import msgspec

from adapters.xml import generate_signing_identity
from hub.cli.common import emit, run_with_services, settings_or_exit, table
from hub.delivery import deadletters
from hub.delivery.agencies import (
    TestResult,
    add_agency,
    agency_health,
    get_agency,
    pause_agency,
    reseal_agencies,
    resume_agency,
    send_test,
    update_agency,
)
from hub.delivery.schemas import (
    AgencyCreate,
    AgencyHealth,
    AgencyRead,
    AgencyUpdate,
    DeliveryDetail,
    DeliveryRead,
    OrderBlock,
    ReplayRange,
    ReplayResult,
    ResealResult,
    Subscription,
)
from hub.feeds.schemas import PositionRead
from hub.runtime import Services

ACTOR = "cli:" + os.environ.get("USER", "operator")
ORDERINGS = ["none", "agency", "camera"]
ORDERING_HELP = (
    "FIFO for receivers that need order: 'agency' sends its deliveries one at a time in "
    "commit order, 'camera' does so per camera; a failed head then blocks its agency (or "
    "camera) until delivered or dead-lettered. 'none': batched and concurrent."
)


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@click.group("agencies")
def agencies() -> None:
    """Register agencies, see their health, pause, resume and test them."""


@agencies.command("add")
@click.argument("name")
@click.option("--kind", required=True, help="Adapter kind: rest, soap, xml (or a plugin's).")
@click.option("--url", help="rest/xml: where messages are POSTed.")
@click.option("--wsdl-url", help="soap: the agency's WSDL.")
@click.option("--operation", default="SubmitDetection", show_default=True, help="soap: operation.")
@click.option("--secret", "webhook_secret", help="rest: whsec_ secret (generated if omitted).")
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Full adapter configuration as JSON (instead of the options above).",
)
@click.option("--purpose", default="investigation", show_default=True)
@click.option("--jurisdiction", "jurisdictions", multiple=True, help="Repeat for several.")
@click.option("--clearance", type=click.IntRange(0, 10), default=0, show_default=True)
@click.option("--class", "classes", multiple=True, help="Subscribe to these classes only.")
@click.option("--camera", "cameras", multiple=True, help="Subscribe to these cameras only.")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option(
    "--retry-schedule",
    help="Seconds to wait after attempt 1, 2, ... comma-separated, the last repeating "
    "(e.g. 5,60,300; default: the hub's doubling backoff).",
)
@click.option(
    "--ordering",
    type=click.Choice(ORDERINGS),
    default="none",
    show_default=True,
    help=ORDERING_HELP,
)
@click.option("--json", "as_json", is_flag=True, help="Print the agency as JSON.")
def add(name: str, kind: str, config_file: Path | None, as_json: bool, **options: Any) -> None:
    """Register agency NAME (its recipient id in release policy). A generated secret is
    printed once: give it to the agency now."""
    config, shown = _config(name, kind, config_file, options)
    create = AgencyCreate(
        name=name,
        kind=kind,
        config=config,
        subscription=Subscription(
            classes=list(options["classes"]),
            cameras=list(options["cameras"]),
            min_confidence=options["min_confidence"],
            purpose=options["purpose"],
        ),
        jurisdictions=list(options["jurisdictions"]),
        clearance=options["clearance"],
        retry_schedule=_schedule(options["retry_schedule"]),
        ordering=options["ordering"],
    )

    async def work(services: Services) -> AgencyRead:
        return await add_agency(services.db, services.delivery.adapters, create, actor=ACTOR)

    agency = run_with_services(work)
    emit(
        {"agency": msgspec.to_builtins(agency), **shown},
        as_json=as_json,
        text=lambda: "\n".join(
            [f"registered {agency.name} ({agency.kind}) -> {agency.endpoint}"]
            + [f"{key}: {value}  (shown once)" for key, value in shown.items()]
        ),
    )


def _config(
    name: str, kind: str, config_file: Path | None, options: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The adapter configuration from the options, and what must be shown to the operator."""
    if config_file is not None:
        loaded = json.loads(config_file.read_text(encoding="utf-8"))
        if not isinstance(loaded, dict):
            raise click.UsageError("--config must hold a JSON object")
        return loaded, {}
    if kind == "rest":
        secret = options["webhook_secret"] or new_webhook_secret()
        shown = {} if options["webhook_secret"] else {"webhook_secret": secret}
        return {"url": _need(options, "url"), "secrets": [secret]}, shown
    if kind == "soap":
        return {"wsdl_url": _need(options, "wsdl_url"), "operation": options["operation"]}, {}
    if kind == "xml":
        folder = Path(settings_or_exit().secrets_dir) / "xml" / name
        key, cert = generate_signing_identity(folder, f"hub to {name}")
        config = {
            "url": _need(options, "url"),
            "signing_key_file": str(key),
            "signing_cert_file": str(cert),
        }
        return config, {"signing_certificate": str(cert)}
    raise click.UsageError(f"no built-in options for kind {kind!r}: use --config")


def _schedule(text: str | None) -> list[float] | None:
    """`--retry-schedule` as seconds (its bounds are checked at registration)."""
    if text is None:
        return None
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise click.UsageError("--retry-schedule takes seconds separated by commas") from None


def _need(options: dict[str, Any], key: str) -> str:
    value = options.get(key)
    if not value:
        raise click.UsageError(f"--{key.replace('_', '-')} is required for this kind")
    return str(value)


@agencies.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_(as_json: bool) -> None:
    """Agencies with their circuit breaker and deliveries by status."""

    async def work(services: Services) -> list[AgencyHealth]:
        return await agency_health(services.db, services.delivery.breaker)

    found = run_with_services(work)
    emit(found, as_json=as_json, text=lambda: _health_table(found))


def _health_table(found: list[AgencyHealth]) -> str:
    if not found:
        return "no agencies registered"
    lines = [f"{'NAME':24} {'KIND':5} {'STATUS':8} {'BREAKER':9} {'ORDERING':8} DELIVERIES"]
    for item in found:
        counts = " ".join(f"{k}={v}" for k, v in sorted(item.counts.items())) or "-"
        a = item.agency
        lines.append(
            f"{a.name:24} {a.kind:5} {a.status:8} {item.breaker.state:9} {a.ordering:8} {counts}"
        )
        lines.extend(f"  BLOCKED {_block_line(block)}" for block in item.blocked)
    return "\n".join(lines)


def _block_line(block: OrderBlock) -> str:
    """One stopped FIFO queue: which, behind which delivery, since when, how many wait."""
    where = f"camera {block.camera}" if block.camera is not None else "agency queue"
    since = block.since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if block.since else "?"
    return (
        f"{where} by delivery {block.delivery_id} since {since} UTC "
        f"({block.attempts} attempts, {block.waiting} waiting): {block.last_error or '-'}"
    )


@agencies.command("positions")
@click.argument("agency")
@click.argument("numbers", nargs=-1, required=True, type=int)
@click.option(
    "--hub-wide",
    is_flag=True,
    help="NUMBERS are hub-wide positions, as the audit log names them; print what AGENCY "
    "was shown for them.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
def positions(agency: str, numbers: tuple[int, ...], hub_wide: bool, as_json: bool) -> None:
    """What feed positions AGENCY reports stand for: each agency is shown its own numbers
    (ADR 0042); this prints the hub-wide position and the event behind each NUMBER."""
    from hub.feeds.service import explain_positions

    async def work(services: Services) -> list[PositionRead]:
        return await explain_positions(
            services.feeds, agency=agency, numbers=list(numbers), hub_wide=hub_wide
        )

    found = run_with_services(work)
    rows: list[list[object]] = [
        [p.shown, p.seq, p.event_id or "(not kept)", p.captured_at] for p in found
    ]
    emit(found, as_json=as_json, text=lambda: table(["SHOWN", "SEQ", "EVENT", "CAPTURED"], rows))


@agencies.command("update")
@click.argument("agency")
@click.option("--ordering", type=click.Choice(ORDERINGS), help=ORDERING_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the agency as JSON.")
def update(agency: str, ordering: str | None, as_json: bool) -> None:
    """Change AGENCY's settings (audited)."""
    if ordering is None:
        raise click.UsageError("nothing to change: give --ordering")
    change = msgspec.convert({"ordering": ordering}, AgencyUpdate)

    async def work(services: Services) -> AgencyRead:
        kit = services.delivery
        return await update_agency(services.db, kit.queue, agency, change, actor=ACTOR)

    found = run_with_services(work)
    emit(found, as_json=as_json, text=lambda: f"{found.name}: ordering {found.ordering}")


@agencies.command("pause")
@click.argument("agency")
@click.option("--reason", required=True, help="Why (kept on the agency and audited).")
def pause(agency: str, reason: str) -> None:
    """Stop deliveries to AGENCY; they wait in the ledger."""

    async def work(services: Services) -> AgencyRead:
        return await pause_agency(services.db, agency, reason=reason, actor=ACTOR)

    click.echo(f"paused {run_with_services(work).name}")


@agencies.command("resume")
@click.argument("agency")
def resume(agency: str) -> None:
    """Resume deliveries to AGENCY and queue what waited."""

    async def work(services: Services) -> AgencyRead:
        kit = services.delivery
        return await resume_agency(services.db, kit.breaker, kit.queue, agency, actor=ACTOR)

    click.echo(f"resumed {run_with_services(work).name}")


@agencies.command("reseal")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def reseal(as_json: bool) -> None:
    """Seal every agency's secrets under the current master key (HUB_PII_MASTER_KEY_ID).

    Run after rotating the key, before retiring the old key file; secrets stored in clear
    are sealed too.
    """

    async def work(services: Services) -> ResealResult:
        return await reseal_agencies(services.db, services.delivery.adapters, actor=ACTOR)

    result = run_with_services(work)
    emit(
        result,
        as_json=as_json,
        text=lambda: (
            f"sealed under master key {result.key}: "
            + (", ".join(result.resealed) or "every agency already was")
        ),
    )


@agencies.command("test")
@click.argument("agency")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def test(agency: str, as_json: bool) -> None:
    """Send a signed test message to AGENCY and show its receipt; exit 1 if it failed."""

    async def work(services: Services) -> TestResult:
        _, found = await get_agency(services.db, agency)
        return await send_test(services.audit, services.delivery.adapters, found, actor=ACTOR)

    result = run_with_services(work)
    emit(
        result,
        as_json=as_json,
        text=lambda: (
            f"delivered to {result.agency}: HTTP {result.status_code}, "
            f"reference {result.reference or '-'}"
            if result.delivered
            else f"FAILED ({'retryable' if result.retryable else 'permanent'}): {result.error}"
        ),
    )
    raise SystemExit(0 if result.delivered else 1)


# Dates, times to the second, or to the microsecond (as the list prints them for paging).
MOMENT = click.DateTime(
    [
        "%Y-%m-%d",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S.%f",
        "%Y-%m-%d %H:%M:%S.%f",
    ]
)


@click.group("deliveries")
def deliveries() -> None:
    """Inspect the delivery ledger and replay dead letters."""


@deliveries.command("list")
@click.option(
    "--status",
    default="dead",
    show_default=True,
    type=click.Choice(["pending", "in_flight", "retrying", "delivered", "dead", "withheld"]),
)
@click.option("--agency")
@click.option("--since", type=MOMENT, help="Updated (or died) at or after (UTC).")
@click.option("--until", type=MOMENT, help="Updated (or died) before (UTC).")
@click.option(
    "--limit",
    type=click.IntRange(1, deadletters.MAX_LIST - 1),
    default=50,
    show_default=True,
    help="Rows per page; the last line says how to get the next page.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_deliveries(
    status: str,
    agency: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    as_json: bool,
) -> None:
    """Deliveries (dead letters by default), newest first."""

    async def work(services: Services) -> list[DeliveryRead]:
        return await deadletters.list_deliveries(
            services.db,
            status=status,
            agency=agency,
            since=_utc(since),
            until=_utc(until),
            limit=limit + 1,  # one more says whether there is a next page
        )

    found = run_with_services(work)
    page, more = found[:limit], len(found) > limit
    emit(page, as_json=as_json, text=lambda: _deliveries_table(page, status=status, more=more))


def _deliveries_table(found: list[DeliveryRead], *, status: str, more: bool) -> str:
    """The page as a table, and a last line with the count and how to see the next page."""
    if not found:
        return f"no {status} deliveries match"
    rows: list[list[object]] = [
        [d.id, d.agency, d.status, d.attempts, _when(d), d.last_status_code, d.last_error]
        for d in found
    ]
    headers = ["delivery", "agency", "status", "attempts", "at (UTC)", "code", "last error"]
    last = _when(found[-1])
    tail = (
        f"{len(found)} shown, more exist: add --until '{last}' for the next page"
        if more
        else f"{len(found)} {status} deliveries in all"
    )
    return table(headers, rows) + "\n" + tail


def _when(delivery: DeliveryRead) -> str:
    """The time the list is ordered and paged by (when it died, else last update), UTC."""
    moment = (delivery.dead_at or delivery.updated_at).astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


@deliveries.command("blocked")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def blocked(as_json: bool) -> None:
    """FIFO queues (agency or camera) stopped behind a failed head; exit 1 if any is."""

    async def work(services: Services) -> list[OrderBlock]:
        health = await agency_health(services.db, services.delivery.breaker)
        return [block for item in health for block in item.blocked]

    found = run_with_services(work)
    emit(
        found,
        as_json=as_json,
        text=lambda: (
            "\n".join(f"{b.agency}: {_block_line(b)}" for b in found)
            or "no ordered queue is blocked"
        ),
    )
    raise SystemExit(1 if found else 0)


@deliveries.command("show")
@click.argument("delivery_id", type=click.UUID)
def show(delivery_id: UUID) -> None:
    """A delivery and every attempt, as JSON."""

    async def work(services: Services) -> tuple[DeliveryDetail, str | None]:
        from hub.ops.repository import select_delivery_metadata

        detail = await deadletters.inspect(services.db, delivery_id)
        async with services.db.reader() as conn:  # a view for a person (ADR 0016)
            meta = await select_delivery_metadata(conn, delivery_id)
        return detail, None if meta is None or meta["event_id"] is None else str(meta["event_id"])

    detail, event_id = run_with_services(work)
    # The event is named by its id (the one edges and agencies know), not the ledger's key.
    shown = msgspec.to_builtins(detail)
    shown["delivery"].pop("event_pk", None)
    shown["delivery"]["event_id"] = event_id
    click.echo(msgspec.json.format(msgspec.json.encode(shown)).decode())


@deliveries.command("replay")
@click.argument("delivery_id", type=click.UUID, required=False)
@click.option("--since", type=click.DateTime(), help="Replay dead letters that died since...")
@click.option("--until", type=click.DateTime(), help="...and before this time.")
@click.option("--agency", help="Only this agency's dead letters (with --since/--until).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def replay(
    delivery_id: UUID | None,
    since: datetime | None,
    until: datetime | None,
    agency: str | None,
    as_json: bool,
) -> None:
    """Send dead letters again (same delivery ids): one by id, or a time range."""
    window: ReplayRange | None = None
    if delivery_id is None:
        if since is None or until is None:
            raise click.UsageError("give a DELIVERY_ID, or both --since and --until")
        window = ReplayRange(since=_as_utc(since), until=_as_utc(until), agency=agency)
    elif since is not None or until is not None:
        raise click.UsageError("give a DELIVERY_ID or a time range, not both")

    async def work(services: Services) -> ReplayResult:
        kit = services.delivery
        if window is None:
            assert delivery_id is not None  # noqa: S101 - checked above
            await deadletters.replay_one(
                services.db, kit.queue, delivery_id, actor=ACTOR, extra_attempts=kit.extra_attempts
            )
            return ReplayResult(replayed=1, ids=[delivery_id])
        return await deadletters.replay_range(
            services.db, kit.queue, window, actor=ACTOR, extra_attempts=kit.extra_attempts
        )

    result = run_with_services(work)
    emit(result, as_json=as_json, text=lambda: f"replayed {result.replayed} dead letter(s)")


def _utc(value: datetime | None) -> datetime | None:
    """Command-line times are UTC unless they say otherwise."""
    return None if value is None else _as_utc(value)


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
