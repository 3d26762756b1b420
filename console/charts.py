"""Small Altair charts for the pages (where people would rather look than read)."""

import math
from typing import Any, cast

import altair as alt


def bars(data: list[dict[str, Any]], *, x: str, y: str, color: str | None = None) -> alt.Chart:
    """A bar chart of categories (stacked by `color` when given)."""
    encoding: dict[str, Any] = {"x": alt.X(f"{x}:N", sort=None), "y": alt.Y(f"{y}:Q")}
    if color:
        encoding["color"] = alt.Color(f"{color}:N")
    chart = alt.Chart(alt.InlineData(values=data)).mark_bar().encode(**encoding)
    return cast(alt.Chart, chart.properties(height=220))


def timeline(data: list[dict[str, Any]], *, x: str, y: str) -> alt.Chart:
    """Counts over time as bars on a time axis."""
    chart = alt.Chart(alt.InlineData(values=data)).mark_bar().encode(x=f"{x}:T", y=f"{y}:Q")
    return cast(alt.Chart, chart.properties(height=200))


def side_by_side(data: list[dict[str, Any]], *, x: str, y: str, series: str) -> alt.Chart:
    """Bars of each series next to each other per category (never stacked: p50 on p95 would
    read as their sum)."""
    chart = (
        alt.Chart(alt.InlineData(values=data))
        .mark_bar()
        .encode(
            x=alt.X(f"{x}:N", sort=None),
            xOffset=alt.XOffset(f"{series}:N"),
            y=alt.Y(f"{y}:Q"),
            color=alt.Color(f"{series}:N"),
        )
    )
    return cast(alt.Chart, chart.properties(height=220))


# Each window's burn rate is judged against the alert that reads it (deploy/slo.yaml, the
# SRE workbook's pairs): 14.4x over 1h/5m pages, 6x over 6h/30m pages, 1x over 3d/6h tickets.
PAGE_AT = {"5m": 14.4, "1h": 14.4, "30m": 6.0, "6h": 6.0, "3d": 1.0}
WINDOW_ORDER = ("5m", "30m", "1h", "6h", "3d")
COLOURS = {
    "alert": "background-color: #f8c9c4",
    "burning": "background-color: #fbe7b5",
    "ok": "background-color: #d5efd8",
}


def burn_level(window: str, rate: float | None) -> str | None:
    """`alert` at or past the window's alert threshold, `burning` when the budget goes faster
    than it lasts (>= 1x), `ok` below, None without traffic."""
    if rate is None:
        return None
    if rate >= PAGE_AT.get(window, 1.0):
        return "alert"
    return "burning" if rate >= 1.0 else "ok"


def burn_table(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per SLO (and agency), one column per window, rates rounded."""
    table = []
    for slo in report.get("slos", []):
        row: dict[str, Any] = {
            "SLO": slo["slo"] + (f" ({slo['agency']})" if slo.get("agency") else ""),
            "objective %": slo["objective"],
        }
        for window in WINDOW_ORDER:
            rate = slo["burn_rates"].get(window)
            row[window] = None if rate is None else round(float(rate), 2)
        table.append(row)
    return table


def burn_style(value: Any, *, window: str) -> str:
    """The CSS of one burn-rate cell."""
    number = value if isinstance(value, int | float) and not math.isnan(value) else None
    level = burn_level(window, number)
    return "" if level is None else COLOURS[level]
