"""Policy: active bundle and history, upload a signed bundle (and see its tests), activate,
roll back, and the Rego source of a revision beside the previous one."""

import difflib
from typing import Any

import streamlit as st

from console.ui import attempt, call, client, empty, rows

st.title("Policy bundles")
hub = client()
status: dict[str, Any] = call(lambda: hub.get("/v1/admin/policy/status"), what="policy status")
bundles: list[dict[str, Any]] = call(lambda: hub.get("/v1/admin/policy/bundles"), what="bundles")
c1, c2, c3 = st.columns(3)
c1.metric("Active revision", status["active_revision"] or "default bundle")
c2.metric("Processes converged", "yes" if status["converged"] else "no")
c3.metric("Stored bundles", len(bundles))

st.subheader("History")
if bundles:
    st.dataframe(
        rows(
            bundles,
            ["revision", "status", "uploaded_at", "uploaded_by", "activated_at", "activated_by"],
        ),
        hide_index=True,
        key="pol_history",
    )
else:
    empty("No uploaded bundles: the hub runs its default bundle (policies/).")

st.subheader("Upload a signed bundle")
archive = st.file_uploader("Bundle (.tar.gz, signed with `hub policy sign`)", key="pol_upload")
if archive is not None and st.button("Upload and test", key="pol_upload_go"):
    raw = archive.getvalue()
    response = attempt(
        lambda: hub.post_bytes("/v1/admin/policy/bundles", raw, "application/gzip"),
        what="the upload",
    )
    if response is not None:
        result = response.json()
        tests = result["bundle"].get("tests") or {}
        st.success(f"Stored {result['bundle']['revision']} (signed by {result.get('signed_by')}).")
        st.caption(f"Rego tests: {tests.get('passed', 0)} passed, {tests.get('failed', 0)} failed")
        if tests.get("tests"):
            st.dataframe(tests["tests"], hide_index=True)

revisions = [b["revision"] for b in bundles]
if revisions:
    a1, a2 = st.columns(2)
    with a1:
        target = st.selectbox("Activate", revisions, key="pol_activate_rev")
        if st.button("Activate", key="pol_activate") and attempt(
            lambda: hub.post(f"/v1/admin/policy/bundles/{target}/activate"), what="activation"
        ):
            st.rerun()
    with a2:
        earlier = [b["revision"] for b in bundles if b["status"] == "retired"]
        back = st.selectbox("Roll back to", earlier, key="pol_rollback_rev")
        if st.button("Roll back", key="pol_rollback", disabled=not back) and attempt(
            lambda: hub.post("/v1/admin/policy/rollback", {"revision": back}), what="rollback"
        ):
            st.rerun()

st.subheader("Impact before activation")
uploaded = [b["revision"] for b in bundles if b["status"] == "uploaded"]
if not uploaded:
    empty("No uploaded bundle waits for activation.")
else:
    i1, i2 = st.columns(2)
    candidate = i1.selectbox("Uploaded bundle", uploaded, key="pol_impact_rev")
    hours = i2.number_input("Replay the last hours", 1, 24 * 30, 24, key="pol_impact_hours")
    if st.button("Replay logged decisions under it", key="pol_impact"):
        st.session_state["pol_impact_report"] = attempt(
            lambda: hub.get(
                f"/v1/admin/policy/bundles/{candidate}/impact", hours=int(hours), limit=5000
            ),
            what="the impact",
        )
    report = st.session_state.get("pol_impact_report")
    if report and report["revision"] == candidate:
        st.metric("Would change", f"{report['changed']} of {report['replayed']} decisions")
        st.caption(f"Since {report['since']}; {report['note']}.")
        e1, e2 = st.columns(2)
        e1.dataframe(report["by_entrypoint"], hide_index=True, key="pol_impact_ep")
        e2.dataframe(report["by_recipient"], hide_index=True, key="pol_impact_rc")
        if report["changes"]:
            changed = [
                {
                    "decision": c["decision_id"],
                    "entrypoint": c["entrypoint"],
                    "recipient": c["recipient"],
                    "outcome": f"{c['before']} -> {c['after']}",
                    "changed": ", ".join(d["path"] for d in c["differences"]),
                }
                for c in report["changes"]
            ]
            st.dataframe(changed, hide_index=True, key="pol_impact_changes")

st.subheader("Sources")
running = [p["revision"] for p in status.get("processes", []) if p.get("revision")]
choices = revisions or ([status["active_revision"]] if status["active_revision"] else running[:1])
if not choices:
    empty("No stored revision to show.")
    st.stop()
shown = st.selectbox("Revision", choices, key="pol_source_rev")
index = choices.index(shown)
previous = choices[index + 1] if index + 1 < len(choices) else None
current = call(lambda: hub.get(f"/v1/admin/policy/bundles/{shown}/sources"), what="sources")[
    "files"
]
before: dict[str, str] = {}
if previous:
    before = call(lambda: hub.get(f"/v1/admin/policy/bundles/{previous}/sources"), what="sources")[
        "files"
    ]
names = sorted(set(current) | set(before))
name = st.selectbox("File", names, key="pol_source_file")
left, right = st.columns(2)
left.caption(f"{shown}")
left.code(current.get(name, "(absent)"), language="rego" if name.endswith(".rego") else "json")
right.caption(f"{previous or 'no previous revision'}")
right.code(before.get(name, "(absent)"), language="rego" if name.endswith(".rego") else "json")
if previous:
    changes = "\n".join(
        difflib.unified_diff(
            before.get(name, "").splitlines(),
            current.get(name, "").splitlines(),
            fromfile=previous,
            tofile=shown,
            lineterm="",
        )
    )
    st.code(changes or "(no change)", language="diff")
