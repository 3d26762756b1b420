"""Every way event data leaves the hub, listed once.

Event data is anything taken from a detection event or its images: records, fields of
records, pixels. Each way out names the routes or adapter kind it uses, who receives it and
how release policy applies; every other route of the API is listed in `NO_EVENT_DATA` with
the reason it carries none. tests/hub/test_egress_routes.py fails when the app grows a route,
an adapter or a console page that is in neither list, and tests/egress/ runs every way out
for every recipient profile of the default bundle (docs/egress.md is the prose version).
"""

from typing import Literal

import msgspec

Recipient = Literal["agency", "officer", "operator"]
Release = Literal["record", "image", "record+image", "metadata", "decision-log"]


class Egress(msgspec.Struct, frozen=True, kw_only=True):
    """One way out: its routes (``METHOD /path`` as the app lists them, ``WS`` for a
    WebSocket) or its adapter kind, who receives it and what `release()` shapes."""

    name: str
    recipient: Recipient
    releases: Release
    how: str
    routes: tuple[str, ...] = ()
    adapter: str | None = None


EGRESS: tuple[Egress, ...] = (
    Egress(
        name="push-rest",
        recipient="agency",
        releases="record",
        adapter="rest",
        how="worker: release() per (agency, event), envelope from the released record",
    ),
    Egress(
        name="push-soap",
        recipient="agency",
        releases="record",
        adapter="soap",
        how="worker: release() per (agency, event), envelope from the released record",
    ),
    Egress(
        name="push-xml",
        recipient="agency",
        releases="record",
        adapter="xml",
        how="worker: release() per (agency, event), CAP alert from the released record",
    ),
    Egress(
        name="push-jetstream",
        recipient="agency",
        releases="record",
        adapter="jetstream",
        how="worker: release() per (agency, event), JetStream message of the released record",
    ),
    Egress(
        name="feed-rest",
        recipient="agency",
        releases="record",
        routes=("GET /v1/feeds/events",),
        how="release() per item for the reader's agency",
    ),
    Egress(
        name="feed-soap",
        recipient="agency",
        releases="record",
        routes=("POST /soap/feed",),
        how="release() per item for the reader's agency (GetEvents)",
    ),
    Egress(
        name="feed-live",
        recipient="agency",
        releases="record",
        routes=("WS /v1/feeds/live",),
        how="release() per audience, one decision per distinct verdict; socket re-checked",
    ),
    Egress(
        name="feed-media",
        recipient="agency",
        releases="image",
        routes=("GET /v1/feeds/media/{sha256:str}",),
        how="release_media(): regions blurred for the reader's agency, else withheld",
    ),
    Egress(
        name="incident-candidates",
        recipient="officer",
        releases="record",
        routes=("GET /v1/incidents/candidates",),
        how="release() per stored event for the officer, as if linked (compliance-console)",
    ),
    Egress(
        name="incident-candidate-media",
        recipient="officer",
        releases="image",
        routes=("GET /v1/incidents/candidates/media/{sha256:str}",),
        how="release_media() through the events that reference the image, for the officer",
    ),
    Egress(
        name="incident-detail",
        recipient="officer",
        releases="record",
        routes=("GET /v1/incidents/{incident_id:uuid}",),
        how="release() per linked event for the officer (compliance-console recipient)",
    ),
    Egress(
        name="incident-media",
        recipient="officer",
        releases="image",
        routes=("GET /v1/incidents/{incident_id:uuid}/media/{sha256:str}",),
        how="release_media() for the officer",
    ),
    Egress(
        name="evidence-export",
        recipient="officer",
        releases="record+image",
        routes=("POST /v1/incidents/{incident_id:uuid}/export",),
        how="a signed ZIP of records and images, each released for the officer",
    ),
    Egress(
        name="decision-lookup",
        recipient="officer",
        releases="decision-log",
        routes=(
            "GET /v1/decisions",
            "GET /v1/decisions/{decision_id:str}",
            "POST /v1/decisions/{decision_id:str}/replay",
        ),
        how="logged decision inputs, masked by system/log/mask before they were stored",
    ),
    Egress(
        name="ops-delivery",
        recipient="operator",
        releases="metadata",
        routes=("GET /v1/ops/deliveries/{delivery_id:uuid}/preview",),
        how="ids and detection counts only, never a record; audited as a metadata view",
    ),
)

# Routes that carry no event data, and why (ids and counts are not event data here).
NO_EVENT_DATA: dict[str, str] = {
    "GET /healthz": "liveness",
    "GET /readyz": "readiness",
    "GET /v1/decisions/search": "decision summaries: id, recipient, outcome, reason; no input",
    "GET /v1/admin/policy/bundles/{revision:str}/impact": "counts and result differences only",
    "POST /v1/edge/events": "ingest: data comes in",
    "POST /v1/edge/media/{sha256:str}": "ingest: images come in",
    "GET /v1/admin/policy/bundles": "bundle list",
    "POST /v1/admin/policy/bundles": "bundle upload",
    "POST /v1/admin/policy/bundles/{revision:str}/activate": "bundle activation",
    "POST /v1/admin/policy/rollback": "bundle rollback",
    "GET /v1/admin/policy/status": "active revision per process",
    "GET /v1/admin/policy/bundles/{revision:str}/sources": "Rego sources and data",
    "GET /v1/admin/cameras": "camera registry (ids, nodes, jurisdictions)",
    "GET /v1/admin/nodes/{node:str}/cameras": "camera registry",
    "POST /v1/admin/nodes/{node:str}/cameras": "camera registration",
    "DELETE /v1/admin/nodes/{node:str}/cameras/{camera_id:str}": "camera removal",
    "GET /v1/admin/identity/lockouts": "sign-in lockouts (account names)",
    "DELETE /v1/admin/identity/lockouts/{account:str}": "lifts a lockout",
    "GET /v1/admin/agencies": "agency registry and delivery counts",
    "POST /v1/admin/agencies": "agency registration",
    "PATCH /v1/admin/agencies/{agency:str}": "agency settings (ordering)",
    "POST /v1/admin/agencies/{agency:str}/pause": "agency state",
    "POST /v1/admin/agencies/{agency:str}/resume": "agency state",
    "POST /v1/admin/agencies/{agency:str}/test": "a synthetic test message, no event",
    "GET /v1/admin/deliveries": "ledger rows: ids, status, attempts, agency answers",
    "POST /v1/admin/deliveries/replay": "re-queues deliveries (sent through push-*)",
    "GET /v1/admin/deliveries/{delivery_id:uuid}": "one ledger row with its attempts",
    "POST /v1/admin/deliveries/{delivery_id:uuid}/replay": "re-queues (sent through push-*)",
    "POST /oauth/token": "access tokens",
    "POST /oauth/revoke": "token revocation",
    "GET /.well-known/jwks.json": "public keys",
    "GET /soap/feed": "the WSDL",
    "GET /v1/admin/retention/report": "row counts per class",
    "POST /v1/admin/retention/run": "starts a sweep",
    "POST /v1/privacy/forget": "erases a subject's PII",
    "GET /v1/holds": "legal holds (ids, reasons)",
    "POST /v1/holds": "legal hold request",
    "POST /v1/holds/{hold_id:uuid}/release": "legal hold release",
    "GET /v1/audit/entries": "audit entries hold ids and decision ids, never records",
    "GET /v1/audit/entries/{seq:int}": "one audit entry (ids only)",
    "GET /v1/audit/verify": "chain check",
    "GET /v1/audit/checkpoints": "signed tree heads (size, root hash, time)",
    "GET /v1/audit/witness": "the witness's kind and how many checkpoints it lacks",
    "GET /v1/audit/checkpoint-key": "the checkpoint signing public key",
    "GET /v1/audit/proofs/consistency": "Merkle consistency proof (hashes)",
    "GET /v1/audit/proofs/inclusion/{seq:int}": "Merkle inclusion proof (hashes)",
    "POST /v1/audit/export": "audit entries (ids only)",
    "GET /v1/incidents": "incident list: titles and states",
    "POST /v1/incidents": "incident creation",
    "POST /v1/incidents/evidence/verify": "checks an uploaded package, returns a verdict",
    "POST /v1/incidents/{incident_id:uuid}/assign": "incident state",
    "POST /v1/incidents/{incident_id:uuid}/status": "incident state",
    "POST /v1/incidents/{incident_id:uuid}/notes": "officer notes",
    "POST /v1/incidents/{incident_id:uuid}/events": "links an event id (answers with ids)",
    "GET /v1/ops/overview": "counts and rates",
    "GET /v1/ops/slo": "burn rates",
    "GET /metrics": "Prometheus counters (no labels from records)",
}

# Pushes to outside parties that carry no event data, with what they do carry. Each has a
# test that looks at the bytes its recipient gets (named here).
OUTBOUND_NO_EVENT_DATA: dict[str, str] = {
    "audit-witness": "signed audit checkpoints (tree size, root hash, time, signature) and "
    "consistency-proof hashes, to HUB_AUDIT_WITNESS; no entry content "
    "(tests/hub/audit/test_witness.py, what the witness receives)",
}

# Console pages and the ways out they show (the console calls the API as the officer).
CONSOLE_PAGES: dict[str, tuple[str, ...]] = {
    "login.py": (),
    "overview.py": (),
    "audit.py": (),
    "policy.py": (),
    "deliveries.py": ("ops-delivery",),
    "decisions.py": ("decision-lookup",),
    "incidents.py": ("incident-detail", "incident-media", "evidence-export"),
    "events.py": ("incident-candidates", "incident-candidate-media"),
}

# Route prefixes the API documents itself under (never event data).
SCHEMA_PREFIX = "/schema"


def egress_routes() -> dict[str, Egress]:
    """Every listed egress route, by ``METHOD /path``."""
    return {route: egress for egress in EGRESS for route in egress.routes}


def egress_adapters() -> dict[str, Egress]:
    """Every push way out, by adapter kind."""
    return {e.adapter: e for e in EGRESS if e.adapter is not None}


def by_name(name: str) -> Egress:
    """The way out called `name` (KeyError when there is none)."""
    return {e.name: e for e in EGRESS}[name]
