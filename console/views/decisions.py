"""Decisions: look up a decision id (or the release decisions of an event), its masked input,
result, bundle revision and redaction manifest; replay it under the active bundle."""

from typing import Any

import streamlit as st

from console.ui import attempt, call, client, empty, rows

st.title("Policy decisions")
hub = client()
by = st.radio(
    "Look up", ["decision id", "released record (event id)"], horizontal=True, key="dec_by"
)
if by == "decision id":
    decision_id = st.text_input("Decision id", key="dec_id").strip()
else:
    event_id = st.text_input("Event id", key="dec_event").strip()
    decision_id = ""
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
    empty("Enter a decision id (every 403 and every released record carries one).")
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
    if result["redactions"] or result.get("media"):
        st.dataframe(result["redactions"], hide_index=True)
        st.caption(f"Media obligations: {result.get('media')}")
    else:
        empty("Released without redactions.")

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
