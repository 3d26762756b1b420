"""Audit: search by subject, action, record and time; an entry's detail; the check of every
entry against the latest signed checkpoint, naming the first altered or missing entry or a
cut tail, and what the outside witness holds; signed CSV/JSON exports of a filtered range."""

import json
from datetime import UTC, date, datetime, time
from typing import Any

import streamlit as st

from console import charts
from console.ui import attempt, call, client, empty, rows


def _asked_day(value: str | None) -> date | None:
    """A day from the page's query (links from other pages), None when absent or invalid."""
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def witness_line(status: dict[str, Any]) -> str:
    """What the outside witness holds, in a sentence (`GET /v1/audit/witness`)."""
    if status["kind"] == "none":
        return (
            "No outside witness is configured (HUB_AUDIT_WITNESS): a cut of the log's tail "
            "shows only against the hub's own checkpoints."
        )
    kind = "verifying witness" if status["kind"] == "url" else "witness file"
    if not status["unwitnessed"]:
        return f"The {kind} holds every signed checkpoint."
    return (
        f"The {kind} lacks {status['unwitnessed']} signed checkpoint(s), the oldest signed "
        f"{status['owed_since']}."
    )


st.title("Audit trail")
hub = client()

# Pages link here with filters in the query (`/audit?target=agency:x&since=2026-12-04`).
asked = st.query_params
c1, c2, c3 = st.columns(3)
actor = c1.text_input(
    "Subject (actor, prefix)", asked.get("actor", ""), key="audit_actor", placeholder="user:olga"
)
action = c2.text_input(
    "Action (prefix)", asked.get("action", ""), key="audit_action", placeholder="incident."
)
target = c3.text_input(
    "Record (target contains)", asked.get("target", ""), key="audit_target", placeholder="incident:"
)
d1, d2, d3 = st.columns(3)
since = d1.date_input("From", value=_asked_day(asked.get("since")), key="audit_since")
until = d2.date_input("Until (exclusive)", value=None, key="audit_until")
limit = d3.number_input("Per page", min_value=10, max_value=1000, value=100, key="audit_limit")


def _day(value: Any) -> str | None:
    return None if value is None else datetime.combine(value, time(), tzinfo=UTC).isoformat()


filters = {
    "actor": actor or None,
    "action": action or None,
    "target": target or None,
    "since": _day(since),
    "until": _day(until),
}
cursor = st.session_state.get("audit_before")
page: dict[str, Any] = call(
    lambda: hub.get("/v1/audit/entries", **filters, before_seq=cursor, limit=int(limit)),
    what="audit entries",
)
entries = page["entries"]
st.caption(f"{len(entries)} entries on this page, newest first")
if not entries:
    empty("No audit entries match these filters.")
else:
    columns = ["seq", "at", "actor", "action", "target", "decision_id"]
    st.dataframe(rows(entries, columns), hide_index=True, key="audit_table")
    counts: dict[str, int] = {}
    for e in entries:
        counts[e["action"]] = counts.get(e["action"], 0) + 1
    st.altair_chart(
        charts.bars(
            [{"action": k, "entries": v} for k, v in counts.items()], x="action", y="entries"
        )
    )
nav1, nav2 = st.columns(2)
if nav1.button("First page", key="audit_first", disabled=cursor is None):
    st.session_state.pop("audit_before", None)
    st.rerun()
if nav2.button("Next page", key="audit_next", disabled=page.get("next_before_seq") is None):
    st.session_state["audit_before"] = page["next_before_seq"]
    st.rerun()

st.subheader("Entry detail")
seq = st.number_input("Entry seq", min_value=0, value=0, step=1, key="audit_seq")
if seq:
    entry = attempt(lambda: hub.get(f"/v1/audit/entries/{int(seq)}"), what=f"entry {seq}")
    if entry:
        st.json(entry)

st.subheader("Checkpoint verification")
if st.button("Verify against the latest checkpoint", key="audit_verify"):
    report = call(lambda: hub.get("/v1/audit/verify"), what="the log check")
    anchor = (
        f"the checkpoint of {report['checkpoint_size']} entries signed {report['checkpoint_at']}"
        if report["checkpoint_at"]
        else "no checkpoint yet (nothing signed to compare with)"
    )
    if report["ok"]:
        st.success(
            f"Audit log intact: {report['entries']} entries verified against {anchor}; "
            f"{report['pruned_below']} pruned, {report['unsealed']} not yet sealed."
        )
    else:
        where = f" (entry {report['broken_seq']})" if report["broken_seq"] else ""
        st.error(f"Audit log BROKEN{where}: {report['problem']}")

witness = attempt(lambda: hub.get("/v1/audit/witness"), what="the witness's status")
if witness:
    st.caption(witness_line(witness))

st.subheader("Export")
fmt = st.radio("Format", ["csv", "json"], horizontal=True, key="audit_format")
if st.button("Export the filtered range (signed)", key="audit_export"):
    query = {k: v for k, v in filters.items() if v}
    st.session_state["audit_export_result"] = call(
        lambda: hub.post("/v1/audit/export", {"query": query, "format": fmt}), what="the export"
    )
result = st.session_state.get("audit_export_result")
if result:
    st.success(
        f"{result['count']} entries exported as {result['filename']}, "
        f"signed by key {result['signed']['key_id']}."
    )
    e1, e2 = st.columns(2)
    e1.download_button(
        "Download export", result["content"], file_name=result["filename"], key="audit_dl"
    )
    e2.download_button(
        "Download signed manifest",
        data=json.dumps(result["signed"], indent=2),
        file_name=result["filename"] + ".manifest.json",
        key="audit_dl_manifest",
    )
