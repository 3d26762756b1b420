"""Small Altair charts for the pages (where people would rather look than read)."""

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
