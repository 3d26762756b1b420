"""Every console page through Streamlit's AppTest against a real hub on loopback."""

import asyncio
import io
import zipfile

import pytest

from console.api import ApiError
from console.session import pages_for
from hub.audit import Sealer
from tests.console.conftest import Hub, console_app, log_in, sign_in, texts

pytestmark = [
    pytest.mark.db,
    pytest.mark.redis,
    pytest.mark.slow,
    # Streamlit's script runner reads pandas/pyarrow options that warn about their own
    # deprecations on some versions; not ours to fix (only these two, by message).
    pytest.mark.filterwarnings("ignore:.*is deprecated and will be removed:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:.*datetime.datetime.utcnow.*:DeprecationWarning"),
]


def test_navigation_follows_roles() -> None:
    assert pages_for(("compliance_officer",)) == [
        "overview",
        "events",
        "audit",
        "decisions",
        "incidents",
    ]
    assert pages_for(("admin",)) == ["overview", "decisions", "deliveries", "policy"]
    assert pages_for(("operator",)) == ["overview"]
    assert pages_for(()) == []


async def test_login_shows_the_overview(seeded: Hub) -> None:
    app = log_in(seeded, "olga")
    shown = texts(app)
    assert "Overview" in shown
    assert "Events (24 h)=2" in shown
    assert "Dead letters=" in shown


async def test_signed_out_pages_lead_to_sign_in(seeded: Hub) -> None:
    app = console_app(seeded).run()
    assert not app.exception
    assert "hub console" in texts(app)
    assert '/signin?next=/"' in str(app.markdown[0].value)
    assert "Overview" not in texts(app)


async def test_admin_needs_totp(seeded: Hub) -> None:
    with pytest.raises(ApiError, match="wrong username"):
        sign_in(seeded, "ada")
    with_code = log_in(seeded, "ada", totp=seeded.totp["ada"])
    assert "Policy revision:" in texts(with_code)
    assert "SLO" in texts(with_code)


async def test_operator_denied_audit_by_policy(seeded: Hub) -> None:
    app = log_in(seeded, "otto")
    page = console_app(seeded, "audit")
    page.session_state["hub_cookie"] = app.session_state["hub_cookie"]
    page.run()
    shown = texts(page)
    assert "Permission denied for audit entries" in shown
    assert "decision" in shown


async def test_audit_search_detail_chain_and_export(seeded: Hub) -> None:
    app = log_in(seeded, "olga")
    app.switch_page("views/audit.py").run()
    assert not app.exception
    app.text_input(key="audit_action").input("user.").run()
    table = app.dataframe[0].value
    assert set(table["action"]) == {"user.add"}
    assert len(table) == 3
    app.number_input(key="audit_seq").set_value(int(table["seq"][0])).run()
    assert any("user.add" in str(j.value) for j in app.json)
    app.button(key="audit_verify").click().run()
    assert "Audit log intact" in texts(app)
    assert "No outside witness is configured" in texts(app)
    app.radio(key="audit_format").set_value("csv").run()
    app.button(key="audit_export").click().run()
    assert "3 entries exported" in texts(app)
    result = app.session_state["audit_export_result"]
    assert result["content"].startswith("seq,at,actor,action")


async def test_chain_check_names_the_first_broken_link(seeded: Hub, services) -> None:  # type: ignore[no-untyped-def]
    app = log_in(seeded, "olga")
    await Sealer.from_settings(services.settings, services.db).run(force_checkpoint=True)
    seq = await services.db.pool.fetchval("SELECT seq FROM audit_log WHERE leaf_index = 1")
    await services.db.pool.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = $1", seq)
    app.switch_page("views/audit.py").run()
    app.button(key="audit_verify").click().run()
    assert f"BROKEN (entry {seq})" in texts(app)


async def test_incident_workflow_with_export_and_verify(seeded: Hub) -> None:
    app = log_in(seeded, "olga")
    app.switch_page("views/incidents.py").run()
    assert "No incidents yet" in texts(app)
    app.text_input(key="inc_new_title").input("Plate seen at gate")
    app.button(key="inc_create").click().run()
    assert not app.exception
    app.text_input(key="inc_event").input(seeded.events[0]).run()
    app.button(key="inc_link").click().run()
    app.text_input(key="inc_assignee").input("olga").run()
    app.button(key="inc_assign").click().run()
    app.text_input(key="inc_status_note").input("looking into it").run()
    app.button(key="inc_advance").click().run()
    app.text_area(key="inc_note").input("Requested footage from the agency").run()
    app.button(key="inc_add_note").click().run()
    shown = texts(app)
    assert "investigating" in shown
    assert "No legal hold on this incident" in shown
    app.text_input(key="inc_hold_reason").input("litigation expected").run()
    app.button(key="inc_hold").click().run()
    assert not app.exception
    holds = app.dataframe[2].value
    assert list(holds["status"]) == ["active"]
    app.button(key="inc_hold_release").click().run()  # olga asks; a second officer confirms
    assert next(iter(app.dataframe[2].value["release_requested_by"])) == "user:olga"
    timeline = app.dataframe[1].value
    assert list(timeline["kind"]) == ["link", "assign", "status", "note"]
    assert len(app.get("image")) == 1  # the snapshot, released to the officer
    released = str(app.json[0].value)
    assert "AB-123-CD" not in released  # plates hashed for the console recipient
    app.button(key="inc_export").click().run()
    _, package = app.session_state["inc_package"]
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        names = set(archive.namelist())
    assert {"incident.json", "events.json", "audit.json", "manifest.json", "manifest.sig"} <= names
    assert any(n.startswith("media/") for n in names)
    app.button(key="inc_verify_last").click().run()
    assert "Package verified" in texts(app)
    app.button(key="inc_advance").click().run()
    assert "Closed" in texts(app)


async def test_decision_lookup_and_replay(seeded: Hub) -> None:
    app = log_in(seeded, "olga")
    app.switch_page("views/incidents.py").run()
    app.text_input(key="inc_new_title").input("Why was it allowed?")
    app.button(key="inc_create").click().run()
    app.text_input(key="inc_event").input(seeded.events[0]).run()
    app.button(key="inc_link").click().run()
    caption = next(c.value for c in app.caption if "decision " in str(c.value))
    decision_id = str(caption).rsplit("decision ", 1)[1].strip()
    await asyncio.sleep(0.5)  # the decision log writes every 200 ms
    app.switch_page("views/decisions.py").run()
    listed = app.dataframe[0].value  # browse: the log, newest first, with its recipients
    assert decision_id in set(listed["decision_id"])
    assert "olga" in set(listed["recipient"])
    app.selectbox(key="dec_outcome").set_value("deny").run()
    denied = app.dataframe[0].value  # e.g. the SLO figures the overview asked for
    assert set(denied["outcome"]) == {"deny"}
    assert decision_id not in set(denied["decision_id"])
    app.radio(key="dec_by").set_value("decision id").run()
    assert "Pick a decision" in texts(app)
    app.text_input(key="dec_id").input(decision_id).run()
    shown = texts(app)
    assert "Entrypoint=hub/release/decision" in shown
    assert "Outcome=allow" in shown
    assert any("Audit trail of" in str(m.value) for m in app.markdown)
    app.button(key="dec_replay").click().run()
    assert "Same result" in texts(app)


async def test_dead_letter_preview_and_replay(seeded: Hub) -> None:
    app = log_in(seeded, "ada", totp=seeded.totp["ada"])
    app.switch_page("views/deliveries.py").run()
    assert not app.exception
    assert len(app.dataframe[1].value) == len(seeded.dead) == 2
    assert "Delivery to police-north: event" in texts(app)
    assert "AB-123-CD" not in texts(app)  # metadata only, never the plate
    app.button(key="dl_replay").click().run()
    assert "Replayed" in texts(app)


async def test_a_blocked_fifo_queue_is_shown_with_its_head(
    seeded: Hub,
    services,  # type: ignore[no-untyped-def]
) -> None:
    # police-north made FIFO, its two deliveries queued behind a head that failed.
    await services.db.pool.execute("UPDATE agency SET ordering = 'agency'")
    head = seeded.dead[0]
    await services.db.pool.execute(
        """UPDATE delivery SET status = 'retrying', dead_at = NULL, last_error = 'HTTP 503',
                  attempts = 1, camera_id = 'demo-cam-1', next_attempt_at = now() + '1 hour',
                  order_seq = CASE WHEN id = $1::uuid THEN 1 ELSE 2 END""",
        head,
    )
    app = log_in(seeded, "ada", totp=seeded.totp["ada"])
    app.switch_page("views/deliveries.py").run()
    assert not app.exception
    assert "1 ordered queue(s) wait behind a failed delivery" in texts(app)
    [row] = app.dataframe[1].value.to_dict("records")
    assert (row["blocked by"], row["camera"], row["waiting"]) == (head, "(whole agency)", 1)
    assert row["last error"] == "HTTP 503"


async def test_policy_page_shows_sources(seeded: Hub) -> None:
    app = log_in(seeded, "ada", totp=seeded.totp["ada"])
    app.switch_page("views/policy.py").run()
    assert not app.exception
    shown = texts(app)
    assert "Active revision=" in shown
    assert "No uploaded bundles" in shown
    app.selectbox(key="pol_source_file").set_value("hub/authz.rego").run()
    assert any("package hub.authz" in str(c.value) for c in app.code)


async def test_events_are_browsed_with_thumbnails_and_linked_without_ids(seeded: Hub) -> None:
    app = log_in(seeded, "olga")
    app.switch_page("views/incidents.py").run()
    app.text_input(key="inc_new_title").input("Seen on camera 1")
    app.button(key="inc_create").click().run()
    app.switch_page("views/events.py").run()
    assert not app.exception
    shown = texts(app)
    assert "2 events, newest first; 0 withheld from you" in shown
    assert len(app.get("image")) == 1  # the scanned snapshot, released (blurred) to olga
    assert "AB-123-CD" not in shown  # plates hashed for the console recipient
    app.multiselect(key="ev_pick").set_value(seeded.events).run()
    app.button(key="ev_link").click().run()
    assert "Linked 2 event(s) to the incident." in texts(app)
    assert any("/audit?target=incident%3A" in str(m.value) for m in app.markdown)
    app.switch_page("views/incidents.py").run()
    timeline = app.dataframe[1].value
    assert list(timeline["kind"]) == ["link", "link"]


async def test_policy_page_shows_the_impact_of_an_uploaded_bundle(seeded: Hub, services) -> None:  # type: ignore[no-untyped-def]
    from tests.hub.policy.bundles.test_service import upload

    app = log_in(seeded, "ada", totp=seeded.totp["ada"])
    await upload(services, "candidate-1")  # authz only: the seeded ingest decisions would fail
    await asyncio.sleep(0.5)  # the decision log writes every 200 ms
    app.switch_page("views/policy.py").run()
    app.button(key="pol_impact").click().run()
    assert not app.exception
    changed = next(m for m in app.metric if m.label == "Would change")
    count, _, total = str(changed.value).partition(" of ")
    assert int(count) >= 1
    assert int(total.split()[0]) >= int(count)
    changes = app.dataframe[-1].value
    ingest = changes[changes["entrypoint"] == "hub/ingest/decision"]
    assert len(ingest) >= 1
    assert all(o.endswith("-> error") for o in ingest["outcome"])  # no ingest rule in it
