"""Typed inputs and outputs of the policy entrypoints (the contract `policies/README.md`
documents). Engines speak JSON; these Structs are what the rest of the hub sees."""

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from hub.identity.schemas import Role as Role  # re-exported for policy callers
from hub.identity.schemas import Subject

Entrypoint = Literal[
    "hub/authz/decision",
    "hub/ingest/decision",
    "hub/release/decision",
    "hub/retention/decision",
    "system/log/mask",
]
# A JSON pointer (RFC 6901) into a record where `*` stands for every element of an array,
# e.g. "/detections/*/attributes/plate_text".
PointerPattern = Annotated[str, msgspec.Meta(pattern=r"^(/[^/]*)*$")]


class RequestInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The HTTP request being authorised: route template, concrete path, ids named in it."""

    method: str
    route: str
    path: str
    resource: dict[str, str] = {}


class AuthzInput(msgspec.Struct, frozen=True, kw_only=True):
    """Input of `hub/authz/decision`."""

    subject: Subject
    request: RequestInfo
    time: datetime


class AuthzResult(msgspec.Struct, frozen=True, kw_only=True):
    """Output of `hub/authz/decision`."""

    allow: bool
    reason: str


class IngestNode(msgspec.Struct, frozen=True, kw_only=True):
    """The uploading node as the registry knows it."""

    id: str
    status: Literal["active", "revoked"]
    name: str = ""


class IngestGroup(msgspec.Struct, frozen=True, kw_only=True):
    """The events of a batch that share camera, model and class list (no attribute values:
    no personal data). Policy judges groups; a batch of 100 events from one camera is a few."""

    camera_id: str
    model_name: str
    classes: list[str]
    # The camera's jurisdiction in the camera registry (never what an event claims).
    jurisdiction: str = ""


class IngestInput(msgspec.Struct, frozen=True, kw_only=True):
    """Input of `hub/ingest/decision`: one evaluation per batch, its distinct groups in order."""

    node: IngestNode
    groups: list[IngestGroup]


class GroupVerdict(msgspec.Struct, frozen=True, kw_only=True):
    """What to do with a group's events. On `accept`, `min_confidence` is an obligation the
    hub applies per event: an event whose best score is below it is dropped."""

    action: Literal["accept", "drop", "quarantine"]
    reason: str
    min_confidence: float | None = None


class IngestResult(msgspec.Struct, frozen=True, kw_only=True):
    """Output of `hub/ingest/decision`: one verdict per input group, same order."""

    groups: list[GroupVerdict]


class Recipient(msgspec.Struct, frozen=True, kw_only=True):
    """Who data is released to (an agency, or an officer's own view)."""

    id: str
    kind: Literal["agency", "user"]
    jurisdictions: list[str] = []
    clearance: int = 0


class ReleaseInput(msgspec.Struct, frozen=True, kw_only=True):
    """Input of `hub/release/decision`."""

    recipient: Recipient
    purpose: str
    data_class: str
    record: dict[str, Any]


class Redaction(msgspec.Struct, frozen=True, kw_only=True):
    """One change to a record before release. `params`: mask -> {"keep_last": n};
    generalize -> {"time_seconds": n} or {"decimals": n}; hash and remove take none."""

    path: PointerPattern
    op: Literal["remove", "mask", "hash", "generalize"]
    params: dict[str, int] = {}


class MediaObligation(msgspec.Struct, frozen=True, kw_only=True):
    """What must happen to images released with the record (blur regions of classes)."""

    op: Literal["blur"]
    classes: list[str]


class ReleaseResult(msgspec.Struct, frozen=True, kw_only=True):
    """Output of `hub/release/decision`."""

    allow: bool
    reason: str
    redactions: list[Redaction] = []
    media: list[MediaObligation] = []


class RetentionInput(msgspec.Struct, frozen=True, kw_only=True):
    """Input of `hub/retention/decision`."""

    data_class: str
    jurisdiction: str
    agency: str | None = None
    legal_hold: bool = False


class RetentionResult(msgspec.Struct, frozen=True, kw_only=True):
    """Output of `hub/retention/decision`: keep for `keep_days`; `hold` means keep until the
    hold is released, whatever `keep_days` says."""

    keep_days: int
    hold: bool
    reason: str


class DecisionRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One evaluated decision, as logged (input already masked) and as cited by releases."""

    decision_id: str
    entrypoint: str
    revision: str
    at: datetime
    latency_us: int
    input: Any
    result: Any
    error: str | None = None
