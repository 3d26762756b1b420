"""Decisions: browse the decision log (time, recipient, entrypoint, outcome, revision) and
open one: its masked input, result, bundle revision, redaction manifest, the audit entries
about its recipient, and a replay under the active bundle. A decision id or an event's
release decisions can still be looked up directly."""

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import streamlit as st

from console.ui import attempt, call, client, empty, rows

ENTRYPOINTS = [
    "any",
    "hub/release/decision",
    "hub/authz/decision",
    "hub/ingest/decision",
    "hub/retention/decision",
]
WINDOWS = {"1 hour": 1, "24 hours": 24, "7 days": 24 * 7, "30 days": 24 * 30}
COLUMNS = ["at", "outcome", "recipient", "entrypoint", "revision", "reason", "decision_id"]


def browse() -> str:
    """The filter bar and the list; the decision picked in it (or "")."""
    c1, c2, c3 = st.columns(3)
    window = c1.selectbox("Within the last", list(WINDOWS), index=1, key="dec_window")
    recipient = c2.text_input("Recipient (agency, user, node)", key="dec_recipient").strip()
    revision = c3.text_input("Bundle revision", key="dec_revision").strip()
    c4, c5 = st.columns(2)
    entrypoint = c4.selectbox("Entrypoint", ENTRYPOINTS, key="dec_entrypoint")
    outcome = c5.selectbox("Outcome", ["any", "allow", "deny", "error", "other"], key="dec_outcome")
    since = datetime.now(UTC) - timedelta(hours=WINDOWS[window])
    page: dict[str, Any] = call(
        lambda: hub.get(
            "/v1/decisions/search",
            since=since.isoformat(),
            recipient=recipient or None,
            revision=revision or None,
            entrypoint=None if entrypoint == "any" else entrypoint,
            outcome=None if outcome == "any" else outcome,
            limit=200,
        ),
        what="decisions",
    )
    found = page["decisions"]
    st.caption(
        f"{len(found)} decisions, newest first" + (" (first 200)" if page["next_until"] else "")
    )
    if not found:
        empty("No decisions match these filters.")
        return ""
    picked = st.dataframe(
        rows(found, COLUMNS),
        hide_index=True,
        key="dec_list",
        on_select="rerun",
        selection_mode="single-row",
    )
    chosen = picked.selection.rows if picked else []
    return str(found[chosen[0]]["decision_id"]) if chosen else ""


st.title("Policy decisions")
hub = client()
by = st.radio(
    "Find", ["browse", "decision id", "released record (event id)"], horizontal=True, key="dec_by"
)
decision_id = ""
if by == "browse":
    decision_id = browse()
elif by == "decision id":
    decision_id = st.text_input("Decision id", key="dec_id").strip()
else:
    event_id = st.text_input("Event id", key="dec_event").strip()
    if event_id:
        found = attempt(
            lambda: hub.get("/v1/decisions", event_id=event_id), what="the event's decisions"
        )
        if found == []:
            empty("No release decisions are recorded for this event.")
        elif found:
            st.dataframe(
                rows(found, ["decision_id", "at", "revision", "entrypoint"]), hide_index=True
            )
            decision_id = (
                st.selectbox("Decision", [d["decision_id"] for d in found], key="dec_pick") or ""
            )
if not decision_id:
    empty("Pick a decision in the list (or enter an id: every 403 and released record has one).")
    st.stop()

decision: dict[str, Any] = call(
    lambda: hub.get(f"/v1/decisions/{decision_id}"), what="the decision"
)
c1, c2, c3, c4 = st.columns(4)
c1.metric("Entrypoint", decision["entrypoint"])
c2.metric("Bundle revision", decision["revision"] or "none")
c3.metric("Latency", f"{decision['latency_us']} µs")
result = decision["result"]
allowed = result.get("allow") if isinstance(result, dict) else None
c4.metric("Outcome", "allow" if allowed else ("deny" if allowed is False else "—"))
if decision.get("error"):
    st.warning(f"This decision failed closed: {decision['error']}")
left, right = st.columns(2)
with left:
    st.subheader("Input (masked as logged)")
    st.json(decision["input"])
with right:
    st.subheader("Result")
    st.json(result)
if isinstance(result, dict) and result.get("redactions") is not None:
    st.subheader("Redaction manifest")
    if allowed is False:
        empty(f"Denied: nothing was released ({result.get('reason') or 'no reason given'}).")
    elif result["redactions"] or result.get("media"):
        st.dataframe(result["redactions"], hide_index=True)
        st.caption(f"Media obligations: {result.get('media')}")
    else:
        empty("Released without redactions.")
_about = decision["input"] if isinstance(decision["input"], dict) else {}
_who = (_about.get("recipient") or _about.get("subject") or {}).get("id")
_kind = (_about.get("recipient") or _about.get("subject") or {}).get("kind")
if _who:
    target = f"{'agency' if _kind in ('agency', 'client') else 'user'}:{_who}"
    query = urlencode({"target": target, "since": decision["at"][:10]})
    st.markdown(f"[Audit trail of {target} since that day](/audit?{query})")

st.subheader("Replay under the active bundle")
st.caption("The replay evaluates the logged (masked) input; masked fields stay masked.")
if st.button("Replay", key="dec_replay"):
    st.session_state["dec_replayed"] = call(
        lambda: hub.post(f"/v1/decisions/{decision_id}/replay"), what="the replay"
    )
replayed = st.session_state.get("dec_replayed")
if replayed and replayed["original"]["decision_id"] == decision_id:
    if replayed["same"]:
        st.success(
            f"Same result under revision {replayed['replay_revision']} "
            f"(replay decision {replayed['replay_decision_id']})."
        )
    else:
        st.warning(
            f"{len(replayed['differences'])} difference(s) under revision "
            f"{replayed['replay_revision']} (replay decision {replayed['replay_decision_id']})."
        )
        st.dataframe(replayed["differences"], hide_index=True, key="dec_diff")
    a, b = st.columns(2)
    a.caption(f"Logged, revision {replayed['original']['revision']}")
    a.json(replayed["original"]["result"])
    b.caption(f"Replayed, revision {replayed['replay_revision']}")
    b.json(replayed["replay_result"])
