"""Deliveries: per agency success rate (over attempts that sent something), withheld attempts
apart, latency percentiles side by side, circuit state, FIFO queues stopped behind a failed
delivery, pause/resume; dead letters with their metadata (ids and counts, never the record)
and replay."""

from typing import Any

import streamlit as st

from console import charts
from console.ui import action_button, attempt, call, client, empty, rows

st.title("Deliveries")
hub = client()
overview: dict[str, Any] = call(lambda: hub.get("/v1/ops/overview"), what="delivery figures")
agencies: list[dict[str, Any]] = call(lambda: hub.get("/v1/admin/agencies"), what="agencies")
figures = overview["agencies"]
if not agencies:
    empty("No agencies are registered (`hub agencies add`).")
    st.stop()
table = [
    {
        "agency": f["agency"],
        "status": f["status"],
        "circuit": f["circuit"],
        "success %": None if f["success_rate"] is None else round(100 * f["success_rate"], 1),
        "sent (24 h)": f["sent"],
        "withheld (24 h)": f["withheld"],
        "p50 ms": f["latency_p50_ms"],
        "p95 ms": f["latency_p95_ms"],
        **dict(f["counts"].items()),
    }
    for f in figures
]
st.dataframe(table, hide_index=True, key="dl_agencies")
st.caption(
    "Success % = delivered / attempts that sent something. Withheld attempts (release policy "
    "kept the record back, nothing was sent) are counted apart and left out of the latency."
)
# FIFO agencies (ADR 0019) whose queue, or one camera's, waits behind a failed delivery.
blocked = [b for a in agencies for b in a.get("blocked", [])]
if blocked:
    st.warning(
        f"{len(blocked)} ordered queue(s) wait behind a failed delivery: nothing after it goes "
        "until it is delivered or dead-lettered (a dead letter lets the rest go)."
    )
    blocked_table = [
        {
            "agency": b["agency"],
            "camera": b["camera"] or "(whole agency)",
            "blocked by": b["delivery_id"],
            "since": b["since"],
            "attempts": b["attempts"],
            "waiting": b["waiting"],
            "next attempt": b["next_attempt_at"],
            "last error": b["last_error"],
        }
        for b in blocked
    ]
    st.dataframe(blocked_table, hide_index=True, key="dl_blocked")
rated = [
    {"agency": f["agency"], "success %": 100 * f["success_rate"]}
    for f in figures
    if f["success_rate"] is not None
]
timed = [
    {"agency": f["agency"], "percentile": p, "ms": f[key]}
    for f in figures
    for p, key in (("p50", "latency_p50_ms"), ("p95", "latency_p95_ms"))
    if f[key] is not None
]
c1, c2 = st.columns(2)
with c1:
    st.caption("Success rate of sent attempts (24 h)")
    if rated:
        st.altair_chart(charts.bars(rated, x="agency", y="success %"))
    else:
        empty("Nothing was sent in the last 24 hours.")
with c2:
    st.caption("Latency of sent attempts (24 h), p50 and p95")
    if timed:
        st.altair_chart(charts.side_by_side(timed, x="agency", y="ms", series="percentile"))
    else:
        empty("Nothing was sent in the last 24 hours.")

st.subheader("Pause or resume")
names = [a["agency"]["name"] for a in agencies]
name = st.selectbox("Agency", names, key="dl_agency")
state = next(a["agency"]["status"] for a in agencies if a["agency"]["name"] == name)
if state == "paused":
    action_button(
        f"Resume {name}",
        key="dl_resume",
        action=lambda: hub.post(f"/v1/admin/agencies/{name}/resume"),
        what="resume",
    )
else:
    why = st.text_input("Reason for pausing", key="dl_pause_reason")
    if st.button(f"Pause {name}", key="dl_pause", disabled=not why) and attempt(
        lambda: hub.post(f"/v1/admin/agencies/{name}/pause", {"reason": why}), what="pause"
    ):
        st.rerun()

st.subheader("Dead letters")
only = st.selectbox("Agency filter", ["all", *names], key="dl_dead_agency")
dead: list[dict[str, Any]] = call(
    lambda: hub.get("/v1/admin/deliveries", status="dead", agency=None if only == "all" else only),
    what="dead letters",
)
if not dead:
    empty("No dead letters.")
    st.stop()
st.dataframe(
    rows(dead, ["id", "agency", "attempts", "last_error", "last_status_code", "dead_at"]),
    hide_index=True,
    key="dl_dead",
)
picked = st.selectbox("Dead letter", [d["id"] for d in dead], key="dl_pick")
preview = attempt(lambda: hub.get(f"/v1/ops/deliveries/{picked}/preview"), what="the preview")
if preview:
    # Operators see metadata only: the record is the agency's (its release is looked up by
    # a compliance officer through the decision id).
    counts = ", ".join(f"{label} {n}" for label, n in sorted(preview["detections"].items()))
    st.caption(
        f"Delivery to {preview['agency']}: event {preview['event_id']}, camera "
        f"{preview['camera_id']}, detections: {counts or 'none'}, media: {preview['media']}, "
        f"last decision {preview['decision_id'] or 'none'}"
    )
if st.button("Replay this dead letter", key="dl_replay"):
    replayed = attempt(lambda: hub.post(f"/v1/admin/deliveries/{picked}/replay"), what="the replay")
    if replayed:
        st.success(f"Replayed {picked}: status {replayed['status']}.")
