"""SLOs from `deploy/slo.yaml`: the spec, Prometheus rules generated from it, and burn rates
computed from counter samples (pure functions; the sampler and routes call them).

Burn rate = error ratio over a window / error budget (1 - objective). The alerts follow the
SRE workbook's multi-window, multi-burn-rate scheme, so a fast burn pages within minutes and
a slow one opens a ticket, and both reset quickly once the burn stops.
"""

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml  # type: ignore[import-untyped]
from prometheus_client.utils import floatToGoString

from hub.observability.metrics import HTTP_BUCKETS

SliKind = Literal["http_availability", "http_latency", "delivery_latency"]
ATTEMPT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# (burn factor, long window, short window, severity): the SRE workbook's recommendation.
BURN_ALERTS = (
    (14.4, "1h", "5m", "page"),
    (6.0, "6h", "30m", "page"),
    (1.0, "3d", "6h", "ticket"),
)
WINDOWS = ("5m", "30m", "1h", "6h", "3d")
WINDOW_SECONDS = {"5m": 300, "30m": 1800, "1h": 3600, "6h": 21_600, "3d": 259_200}


class SloError(ValueError):
    """The SLO file is invalid; the message names the SLO and field."""


class Sli(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What counts as good: a kind and its parameters."""

    kind: SliKind
    route: str = ""
    threshold_seconds: float | None = None


class Slo(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One objective, e.g. 99.9 % of ingest requests without a server error."""

    name: str
    alert: str
    description: str
    objective: float
    sli: Sli

    @property
    def budget(self) -> float:
        """The allowed error ratio."""
        return 1.0 - self.objective / 100.0


class SymptomAlert(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An alert on a symptom outside the SLOs (backlog, breaker, policy...)."""

    alert: str
    expr: str
    summary: str
    severity: Literal["page", "ticket"]
    for_: str | None = msgspec.field(default=None, name="for")


class SloSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole of `deploy/slo.yaml`."""

    runbook_url_base: str
    period_days: int = 30
    slos: list[Slo] = []
    alerts: list[SymptomAlert] = []

    def alert_names(self) -> list[str]:
        """Every alert the rules define (each needs `runbooks/<name>.md`)."""
        names = [
            f"{s.alert}{suffix}" for s in self.slos for suffix in ("BudgetBurn", "BudgetBurnSlow")
        ]
        return names + [a.alert for a in self.alerts]


def load_spec(path: Path) -> SloSpec:
    """Read and validate an SLO file."""
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        spec = msgspec.convert(raw, SloSpec)
    except (OSError, yaml.YAMLError) as exc:
        raise SloError(f"cannot read {path}: {exc}") from None
    except msgspec.ValidationError as exc:
        raise SloError(f"{path}: {exc}") from None
    _validate(spec)
    return spec


def _validate(spec: SloSpec) -> None:
    seen: set[str] = set()
    for slo in spec.slos:
        where = f"slo {slo.name!r}"
        if slo.name in seen:
            raise SloError(f"{where}: name used twice")
        seen.add(slo.name)
        if not 0 < slo.objective < 100:
            raise SloError(f"{where}: objective must be between 0 and 100 (a percentage)")
        if not re.fullmatch(r"[A-Z][A-Za-z0-9]*", slo.alert):
            raise SloError(f"{where}: alert must be CamelCase")
        kind = slo.sli.kind
        if kind.startswith("http") and not slo.sli.route:
            raise SloError(f"{where}: sli.route is required for {kind}")
        if kind != "http_availability":
            buckets = HTTP_BUCKETS if kind == "http_latency" else ATTEMPT_BUCKETS
            if slo.sli.threshold_seconds not in buckets:
                raise SloError(
                    f"{where}: sli.threshold_seconds must be a histogram bucket: {buckets}"
                )


def _le(seconds: float | None) -> str:
    return str(floatToGoString(float(seconds or 0)))  # type: ignore[no-untyped-call]


def error_ratio_expr(slo: Slo, window: str) -> str:
    """PromQL for the SLI's error ratio over `window`."""
    sli = slo.sli
    if sli.kind == "delivery_latency":
        metric, by, match = "hub_delivery_attempt_seconds", " by (agency)", ""
    else:
        metric, by, match = "hub_http_request_seconds", "", f'route=~"{sli.route}"'
    total = f"sum{by} (rate({metric}_count{{{match}}}[{window}]))"
    if sli.kind == "http_availability":
        sep = "," if match else ""
        bad = f'sum{by} (rate({metric}_count{{{match}{sep}status=~"5.."}}[{window}]))'
        return f"{bad} / {total}"
    sep = "," if match else ""
    le = _le(sli.threshold_seconds)
    good = f'sum{by} (rate({metric}_bucket{{{match}{sep}le="{le}"}}[{window}]))'
    return f"1 - ({good} / {total})"


def recording_name(window: str) -> str:
    """The recorded series of an SLI's error ratio over `window`."""
    return f"slo:sli_error:ratio_rate{window}"


def prometheus_rules(spec: SloSpec) -> dict[str, Any]:
    """Recording rules and alerts (a Prometheus rule file as a mapping)."""
    groups: list[dict[str, Any]] = []
    for slo in spec.slos:
        records = [
            {
                "record": recording_name(window),
                "expr": error_ratio_expr(slo, window),
                "labels": {"slo": slo.name},
            }
            for window in WINDOWS
        ]
        groups.append({"name": f"slo-{slo.name}", "rules": [*records, *_burn_alerts(spec, slo)]})
    if spec.alerts:
        groups.append({"name": "hub-symptoms", "rules": [_symptom(spec, a) for a in spec.alerts]})
    return {"groups": groups}


def _burn_alerts(spec: SloSpec, slo: Slo) -> list[dict[str, Any]]:
    def over(factor: float, long: str, short: str) -> str:
        threshold = f"{factor * slo.budget:.6g}"
        sel = f'{{slo="{slo.name}"}}'
        return (
            f"({recording_name(long)}{sel} > {threshold}"
            f" and {recording_name(short)}{sel} > {threshold})"
        )

    page = [over(f, long, short) for f, long, short, sev in BURN_ALERTS if sev == "page"]
    ticket = [over(f, long, short) for f, long, short, sev in BURN_ALERTS if sev == "ticket"]
    return [
        _alert(spec, f"{slo.alert}BudgetBurn", " or ".join(page), "page", slo, "fast"),
        _alert(spec, f"{slo.alert}BudgetBurnSlow", " or ".join(ticket), "ticket", slo, "slow"),
    ]


def _alert(
    spec: SloSpec, name: str, expr: str, severity: str, slo: Slo, speed: str
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "labels": {"severity": severity, "slo": slo.name},
        "annotations": {
            "summary": f"{slo.description} The error budget ({slo.objective}%) burns {speed}.",
            "runbook_url": runbook_url(spec, name),
        },
    }


def _symptom(spec: SloSpec, alert: SymptomAlert) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": alert.alert, "expr": alert.expr}
    if alert.for_:
        rule["for"] = alert.for_
    rule["labels"] = {"severity": alert.severity}
    rule["annotations"] = {"summary": alert.summary, "runbook_url": runbook_url(spec, alert.alert)}
    return rule


def runbook_url(spec: SloSpec, alert: str) -> str:
    """Where an alert's runbook page is published (`runbooks/<alert>.md` in the repo)."""
    return f"{spec.runbook_url_base.rstrip('/')}/{alert}.md"


def render_rules(spec: SloSpec) -> str:
    """The rule file as YAML text."""
    header = "# Generated by `hub slo rules` from deploy/slo.yaml; do not edit by hand.\n"
    return header + str(yaml.safe_dump(prometheus_rules(spec), sort_keys=False, width=1000))


# --- burn rates from counter samples (no Prometheus needed) -------------------------------

Totals = dict[tuple[str, str], tuple[float, float]]  # (slo, agency or "") -> (bad, total)


def sli_totals(spec: SloSpec, samples: Iterable[tuple[str, dict[str, str], float]]) -> Totals:
    """Cumulative (bad, total) per SLO (and per agency) from `(name, labels, value)` samples."""
    totals: dict[tuple[str, str], list[float]] = {}
    rows = list(samples)
    for slo in spec.slos:
        for name, labels, value in rows:
            slots = _classify(slo, name, labels)
            if not slots:
                continue
            key = (slo.name, labels.get("agency", "") if slo.sli.kind == "delivery_latency" else "")
            entry = totals.setdefault(key, [0.0, 0.0, 0.0])  # bad, total, good
            for slot in slots:
                entry[slot] += value
    result: Totals = {}
    for key, (bad, total, good) in totals.items():
        slo = next(s for s in spec.slos if s.name == key[0])
        result[key] = (bad if slo.sli.kind == "http_availability" else total - good, total)
    return result


def _classify(slo: Slo, name: str, labels: dict[str, str]) -> tuple[int, ...]:
    """Where a sample counts: 0 bad, 1 total, 2 good (latency kinds); empty: not this SLI."""
    sli = slo.sli
    if sli.kind == "delivery_latency":
        metric = "hub_delivery_attempt_seconds"
    else:
        metric = "hub_http_request_seconds"
        if not re.fullmatch(sli.route, labels.get("route", "")):
            return ()
    if name == f"{metric}_count":
        failed = sli.kind == "http_availability" and labels.get("status", "").startswith("5")
        return (0, 1) if failed else (1,)
    if sli.kind != "http_availability" and name == f"{metric}_bucket":
        return (2,) if labels.get("le") == _le(sli.threshold_seconds) else ()
    return ()


def burn_rate(slo: Slo, now: tuple[float, float], then: tuple[float, float] | None) -> float | None:
    """Burn rate between two cumulative (bad, total) readings; None without traffic."""
    bad, total = now
    if then is not None:
        bad, total = bad - then[0], total - then[1]
    if total <= 0:
        return None
    return (max(bad, 0.0) / total) / slo.budget
