"""Overview: events, deliveries by agency and outcome, backlog, dead letters, incidents,
active policy, SLO burn rates; refreshed live."""

from typing import Any

import streamlit as st

from console import charts
from console.api import ConsoleError
from console.ui import call, client, empty

st.title("Overview")
hub = client()
live = st.toggle("Refresh every 10 s", key="overview_live", value=False)


def render() -> None:
    """Draw the figures once."""
    data: dict[str, Any] = call(lambda: hub.get("/v1/ops/overview"), what="the overview")
    cols = st.columns(6)
    cols[0].metric("Events (24 h)", data["events_window"], help=f"{data['events_total']} stored")
    cols[1].metric("Backlog", data["backlog"])
    cols[2].metric("Dead letters", data["dead_letters"])
    cols[3].metric("Open incidents", data["open_incidents"])
    cols[4].metric("Agencies", len(data["agencies"]))
    cols[5].metric("Policy revision", data["active_revision"] or "none")
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
    slo = _slo()
    if data.get("slo_burn_rates"):
        st.json(data["slo_burn_rates"])
    elif slo:
        st.json(slo)
    else:
        empty("; ".join(data.get("notes") or ["No SLO figures."]))


def _slo() -> Any:
    """Burn rates from `/v1/ops/slo` (observability) when the hub has it and lets us see it."""
    try:
        return hub.get("/v1/ops/slo")
    except ConsoleError:
        return None


if live:

    @st.fragment(run_every=10)
    def live_view() -> None:
        """The figures, redrawn every 10 s without rerunning the page."""
        render()

    live_view()
else:
    render()
