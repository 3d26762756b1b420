"""What the observability routes answer."""

import msgspec


class SloBurn(msgspec.Struct, frozen=True, kw_only=True):
    """Burn rates of one SLO (per agency for delivery latency) by window; null: no traffic."""

    slo: str
    agency: str | None
    objective: float
    burn_rates: dict[str, float | None]
    # A window longer than the samples held is computed over what is held.
    partial_windows: list[str] = []


class SloReport(msgspec.Struct, frozen=True, kw_only=True):
    """Current burn rates of every SLO in `deploy/slo.yaml`."""

    source: str  # "process": this host's counters since start; "prometheus": the recording rules
    sampled_seconds: float
    slos: list[SloBurn]
