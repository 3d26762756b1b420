"""Events: the newest stored events as released to you (thumbnails blurred by your release
profile, withheld ones saying why), picked and linked to an incident without pasting ids;
the incident's audit trail one click away."""

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import streamlit as st

from console.api import ConsoleError
from console.ui import attempt, call, client, empty

WINDOWS = {"1 hour": 1, "24 hours": 24, "7 days": 24 * 7}
THUMBS = "ev_thumbs"  # released images already fetched this session, by sha256

st.title("Events")
hub = client()
c1, c2 = st.columns(2)
window = c1.selectbox("Stored within the last", list(WINDOWS), index=1, key="ev_window")
camera = c2.text_input("Camera id", key="ev_camera").strip()
since = datetime.now(UTC) - timedelta(hours=WINDOWS[window])
events: list[dict[str, Any]] = call(
    lambda: hub.get(
        "/v1/incidents/candidates", since=since.isoformat(), camera_id=camera or None, limit=24
    ),
    what="events",
)
if not events:
    empty("No events stored in this window.")
    st.stop()


def thumbnail(sha: str) -> bytes | None:
    """The image as released to you (fetched once per session)."""
    kept: dict[str, bytes | None] = st.session_state.setdefault(THUMBS, {})
    if sha not in kept:
        try:
            kept[sha], _ = hub.get_bytes(f"/v1/incidents/candidates/media/{sha}")
        except ConsoleError:
            kept[sha] = None
    return kept[sha]


released = [e for e in events if e["allowed"]]
st.caption(f"{len(events)} events, newest first; {len(events) - len(released)} withheld from you")
for event in events:
    with st.container(border=True):
        st.caption(
            f"event {event['event_id']} · captured {event['captured_at'] or '—'} · "
            f"decision {event['decision_id'] or '—'}"
        )
        if not event["allowed"]:
            st.warning(f"Withheld by your release policy: {event['reason']}")
            continue
        cols = st.columns(4)
        for col, sha in zip(cols, event["media"], strict=False):
            image = thumbnail(sha)
            if image is None:
                col.caption("image withheld")
            else:
                col.image(image, caption=sha[:12], width=160)
        labels = sorted({d.get("label", "?") for d in event["record"].get("detections", [])})
        st.caption(f"camera {event['record'].get('camera_id')} · {', '.join(labels) or 'none'}")

st.subheader("Link to an incident")
incidents: list[dict[str, Any]] = call(lambda: hub.get("/v1/incidents"), what="incidents")
open_ones = [i for i in incidents if i["status"] != "closed"]
if not open_ones:
    empty("No open incident: open one on the Incidents page.")
    st.stop()
target = st.selectbox(
    "Incident",
    [i["id"] for i in open_ones],
    format_func=lambda i: next(f"{x['title']} ({x['status']})" for x in open_ones if x["id"] == i),
    key="ev_incident",
)
picked = st.multiselect(
    "Events", [e["event_id"] for e in released], key="ev_pick", placeholder="Choose events"
)


def link(event_id: str) -> bool:
    """Link one event to the chosen incident; False (the page says why) when refused."""
    made = attempt(
        lambda: hub.post(f"/v1/incidents/{target}/events", {"event_id": event_id}),
        what=f"linking {event_id}",
    )
    return made is not None


if st.button("Link", key="ev_link", disabled=not picked):
    done = [e for e in picked if link(e)]
    if done:
        st.success(f"Linked {len(done)} event(s) to the incident.")
trail = urlencode({"target": f"incident:{target}"})
st.markdown(f"[Audit trail of this incident](/audit?{trail})")
