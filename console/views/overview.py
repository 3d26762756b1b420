"""Overview: events, deliveries by agency and outcome, backlog, dead letters, incidents,
active policy, SLO burn rates (a table coloured against the alert thresholds); refreshed
live."""

from functools import partial
from typing import Any

import pandas as pd
import streamlit as st

from console import charts
from console.api import ConsoleError, PermissionDeniedError
from console.ui import call, client, empty

st.title("Overview")
hub = client()
live = st.toggle("Refresh every 10 s", key="overview_live", value=False)


def render() -> None:
    """Draw the figures once."""
    data: dict[str, Any] = call(lambda: hub.get("/v1/ops/overview"), what="the overview")
    cols = st.columns(5)
    cols[0].metric("Events (24 h)", data["events_window"], help=f"{data['events_total']} stored")
    cols[1].metric("Backlog", data["backlog"])
    cols[2].metric("Dead letters", data["dead_letters"])
    cols[3].metric("Open incidents", data["open_incidents"])
    cols[4].metric("Agencies", len(data["agencies"]))
    st.caption(f"Policy revision: `{data['active_revision'] or 'none'}`")
    left, right = st.columns(2)
    with left:
        st.subheader("Events per hour")
        if data["events_by_hour"]:
            st.altair_chart(charts.timeline(data["events_by_hour"], x="hour", y="events"))
        else:
            empty("No events in the last 24 hours.")
    with right:
        st.subheader("Deliveries by agency and outcome")
        stacked = [
            {"agency": a["agency"], "status": status, "deliveries": n}
            for a in data["agencies"]
            for status, n in a["counts"].items()
        ]
        if stacked:
            st.altair_chart(charts.bars(stacked, x="agency", y="deliveries", color="status"))
        else:
            empty("No deliveries yet.")
    st.subheader("SLO burn rates")
    _burn_rates()


def _burn_rates() -> None:
    """Burn rates from `/v1/ops/slo`, each cell coloured against its window's alert."""
    try:
        report = hub.get("/v1/ops/slo")
    except PermissionDeniedError as exc:
        empty(f"SLO burn rates are shown to operators and admins ({exc}).")
        return
    except ConsoleError as exc:
        empty(f"SLO burn rates unavailable: {exc}")
        return
    rows = charts.burn_table(report)
    if not rows:
        empty("No SLOs are defined (deploy/slo.yaml).")
        return
    table = pd.DataFrame(rows).astype(dict.fromkeys(charts.WINDOW_ORDER, "float64"))
    styled = table.style.format(precision=2, na_rep="-")
    for window in charts.WINDOW_ORDER:
        styled = styled.map(partial(charts.burn_style, window=window), subset=[window])
    st.dataframe(styled, hide_index=True, key="ov_burn")
    st.caption(
        "1 = the error budget is spent exactly over the SLO period. Red: at or past the "
        "window's paging threshold (14.4x over 5m/1h, 6x over 30m/6h, 1x over 3d); amber: "
        f"burning faster than the budget lasts; empty: no traffic. Source: {report['source']}."
    )


if live:

    @st.fragment(run_every=10)
    def live_view() -> None:
        """The figures, redrawn every 10 s without rerunning the page."""
        render()

    live_view()
else:
    render()
