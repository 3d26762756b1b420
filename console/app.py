"""The compliance console (Streamlit): sign in, then the pages your roles may use.

Run with `hub console`. It talks only to the hub's REST API with the user's own token, which
the console server keeps (console/sessions.py); the browser holds a session cookie only.
"""

from pathlib import Path

import streamlit as st

from console.session import PAGE_ORDER, pages_for
from console.ui import current_session, end_session

HERE = Path(__file__).parent
TITLES = {
    "overview": ("Overview", ":material/monitoring:"),
    "events": ("Events", ":material/photo_library:"),
    "audit": ("Audit", ":material/receipt_long:"),
    "decisions": ("Decisions", ":material/gavel:"),
    "incidents": ("Incidents", ":material/folder_open:"),
    "deliveries": ("Deliveries", ":material/local_shipping:"),
    "policy": ("Policy", ":material/policy:"),
}
SIGNIN = HERE / "views" / "login.py"


def signed_out() -> None:
    """Every page's address leads to the sign-in page (which returns to it afterwards)."""
    gates = [st.Page(SIGNIN, title="Sign in", icon=":material/key:", default=True)]
    gates += [
        st.Page(SIGNIN, title=TITLES[name][0], url_path=name, icon=TITLES[name][1])
        for name in PAGE_ORDER
    ]
    st.navigation(gates, position="hidden").run()


def main() -> None:
    """Choose the pages for the session (just Sign in without one) and run the chosen one."""
    st.set_page_config(page_title="hub console", page_icon=":material/shield:", layout="wide")
    session = current_session()
    if session is None:
        signed_out()
        return
    pages = [
        st.Page(HERE / "views" / f"{name}.py", title=TITLES[name][0], icon=TITLES[name][1])
        for name in pages_for(session.roles)
    ]
    with st.sidebar:
        st.caption(f"Signed in as **{session.username}** ({', '.join(session.roles)})")
        if st.button("Log out", key="logout", icon=":material/logout:"):
            end_session("You logged out.")
            st.rerun()
    if not pages:
        st.error("Your roles give you no console pages.")
        return
    st.navigation(pages).run()


main()
