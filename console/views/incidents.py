"""Incidents: create, assign, open → investigating → closed, a timeline of notes and linked
events (thumbnails released under the officer's own release policy), evidence export and
verification, legal holds when the hub offers them."""

from typing import Any

import streamlit as st

from console.api import ConsoleError
from console.ui import action_button, attempt, call, client, empty, rows

NEXT = {"open": "investigating", "investigating": "closed"}

st.title("Incidents")
hub = client()

with st.expander("Open a new incident", expanded=False):
    title = st.text_input("Title", key="inc_new_title")
    description = st.text_area("Description", key="inc_new_description")
    if st.button("Create incident", key="inc_create") and title:
        made = attempt(
            lambda: hub.post("/v1/incidents", {"title": title, "description": description}),
            what="the new incident",
        )
        if made:
            st.session_state["inc_selected"] = made["id"]
            st.success(f"Incident {made['id']} opened.")

status_filter = st.selectbox("Status", ["all", "open", "investigating", "closed"], key="inc_status")
incidents: list[dict[str, Any]] = call(
    lambda: hub.get("/v1/incidents", status=None if status_filter == "all" else status_filter),
    what="incidents",
)
if not incidents:
    empty("No incidents yet. Open one above.")
    st.stop()
st.dataframe(
    rows(incidents, ["title", "status", "assignee", "created_by", "created_at", "id"]),
    hide_index=True,
)
ids = [i["id"] for i in incidents]
chosen = st.session_state.get("inc_selected")
selected = st.selectbox(
    "Incident",
    ids,
    index=ids.index(chosen) if chosen in ids else 0,
    format_func=lambda i: next(f"{x['title']} ({x['status']})" for x in incidents if x["id"] == i),
    key="inc_pick",
)
st.session_state["inc_selected"] = selected
base = f"/v1/incidents/{selected}"
detail: dict[str, Any] = call(lambda: hub.get(base), what="the incident")
incident = detail["incident"]
st.header(incident["title"])
st.caption(
    f"{incident['status']} · assigned to {incident['assignee'] or 'nobody'} · "
    f"opened by {incident['created_by']} at {incident['created_at']}"
)
if incident["description"]:
    st.write(incident["description"])

w1, w2 = st.columns(2)
with w1:
    st.subheader("Workflow")
    following = NEXT.get(incident["status"])
    reason = st.text_input("Why (kept on the timeline)", key="inc_status_note")
    if (
        following
        and st.button(f"Move to {following}", key="inc_advance")
        and attempt(
            lambda: hub.post(f"{base}/status", {"status": following, "note": reason}),
            what="the status change",
        )
    ):
        st.rerun()
    if not following:
        st.info("Closed: the incident takes notes but no further changes.")
    assignee = st.text_input("Assign to", key="inc_assignee")
    action_button(
        "Assign",
        key="inc_assign",
        disabled=not assignee or not following,
        action=lambda: hub.post(f"{base}/assign", {"assignee": assignee}),
        what="the assignment",
    )
with w2:
    st.subheader("Add to the timeline")
    note = st.text_area("Note", key="inc_note")
    action_button(
        "Add note",
        key="inc_add_note",
        disabled=not note,
        action=lambda: hub.post(f"{base}/notes", {"body": note}),
        what="the note",
    )
    event_id = st.text_input("Link event (event id)", key="inc_event").strip()
    action_button(
        "Link event",
        key="inc_link",
        disabled=not event_id,
        action=lambda: hub.post(f"{base}/events", {"event_id": event_id}),
        what="the link",
    )

st.subheader("Timeline")
if detail["notes"]:
    st.dataframe(rows(detail["notes"], ["at", "kind", "author", "body"]), hide_index=True)
else:
    empty("Nothing on the timeline yet.")

st.subheader("Linked events")
if not detail["events"]:
    empty("No events linked. Link one by its event id.")
for event in detail["events"]:
    with st.container(border=True):
        st.caption(
            f"event {event['event_id']} · captured {event['captured_at']} · "
            f"decision {event['decision_id'] or '—'}"
        )
        if not event["allowed"]:
            st.warning(f"Withheld by your release policy: {event['reason']}")
            continue
        cols = st.columns(4)
        for col, sha in zip(cols, event["media"], strict=False):
            try:
                image, _ = hub.get_bytes(f"{base}/media/{sha}")
            except ConsoleError:
                col.caption("image withheld")
            else:
                col.image(image, caption=sha[:12], width=160)
        st.json(event["record"], expanded=False)

st.subheader("Legal holds")
st.caption("A hold keeps the linked events from retention; releasing needs a second officer.")
try:
    every_hold: list[dict[str, Any]] = hub.get("/v1/holds")
except ConsoleError as exc:
    every_hold = []
    st.error(f"Holds unavailable: {exc}")
holds = [h for h in every_hold if h.get("incident_id") == selected]
if holds:
    st.dataframe(
        rows(
            holds, ["status", "reason", "held_events", "created_by", "release_requested_by", "id"]
        ),
        hide_index=True,
        key="inc_holds",
    )
else:
    empty("No legal hold on this incident.")
hold_reason = st.text_input("Reason for a hold", key="inc_hold_reason")
action_button(
    "Place legal hold on the linked events",
    key="inc_hold",
    disabled=not hold_reason or not detail["events"],
    action=lambda: hub.post(
        "/v1/holds",
        {
            "reason": hold_reason,
            "incident_id": selected,
            "event_ids": [e["event_id"] for e in detail["events"]],
        },
    ),
    what="the hold",
)
active = [h["id"] for h in holds if h["status"] == "active"]
if active:
    hold_id = st.selectbox("Active hold", active, key="inc_hold_pick")
    pending = next(h for h in holds if h["id"] == hold_id).get("release_requested_by")
    action_button(
        f"Confirm release (requested by {pending})" if pending else "Request release",
        key="inc_hold_release",
        action=lambda: hub.post(f"/v1/holds/{hold_id}/release"),
        what="the hold release",
    )

st.subheader("Evidence")
if st.button("Export evidence package", key="inc_export"):
    response = call(
        lambda: hub.post_bytes(f"{base}/export", b"", "application/json"), what="the export"
    )
    name = response.headers.get("content-disposition", "").partition("filename=")[2].strip('"')
    st.session_state["inc_package"] = (name or "evidence.zip", response.content)
package = st.session_state.get("inc_package")
if package:
    st.success(f"{package[0]} ({len(package[1])} bytes) with a signed SHA-256 manifest.")
    st.download_button("Download package", package[1], file_name=package[0], key="inc_dl")
uploaded = st.file_uploader("Verify a package", type=["zip"], key="inc_verify_file")
check_bytes = uploaded.getvalue() if uploaded is not None else None
if (
    check_bytes is None
    and package
    and st.button("Verify the package just exported", key="inc_verify_last")
):
    check_bytes = package[1]
if check_bytes is not None:
    body = check_bytes
    answer = call(
        lambda: hub.post_bytes("/v1/incidents/evidence/verify", body, "application/zip"),
        what="the verification",
    ).json()
    if answer["ok"]:
        st.success(
            f"Package verified: {answer['files']} files, signed by hub key {answer['key_id']}."
        )
    else:
        st.error("Package does NOT verify: " + "; ".join(answer["problems"]))
