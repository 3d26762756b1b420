"""The compliance console (Streamlit): log in, then the pages your roles may use.

Run with `hub console`. It talks only to the hub's REST API with the user's own token.
"""

from pathlib import Path

import streamlit as st

from console.session import pages_for
from console.ui import current_session, end_session

HERE = Path(__file__).parent
TITLES = {
    "overview": ("Overview", "📊"),
    "audit": ("Audit", "🧾"),
    "decisions": ("Decisions", "⚖️"),
    "incidents": ("Incidents", "🗂️"),
    "deliveries": ("Deliveries", "📦"),
    "policy": ("Policy", "📜"),
}


def main() -> None:
    """Choose the pages for the session (just Login without one) and run the chosen one."""
    st.set_page_config(page_title="hub console", page_icon="🛡️", layout="wide")
    session = current_session()
    if session is None:
        page = st.navigation([st.Page(HERE / "pages" / "login.py", title="Log in", icon="🔑")])
        page.run()
        return
    offered = pages_for(session.roles)
    pages = [
        st.Page(HERE / "pages" / f"{name}.py", title=TITLES[name][0], icon=TITLES[name][1])
        for name in offered
    ]
    with st.sidebar:
        st.caption(f"Signed in as **{session.username}** ({', '.join(session.roles)})")
        st.caption(
            f"Session ends in {session.seconds_left() // 60} min {session.seconds_left() % 60} s"
        )
        if st.button("Log out", key="logout"):
            end_session("You logged out.")
            st.rerun()
    if not pages:
        st.error("Your roles give you no console pages.")
        return
    st.navigation(pages).run()


main()
