"""Log in with username, password and (for accounts that have it) a TOTP code."""

import streamlit as st

from console.api import ConsoleError, HubUnreachableError
from console.session import login
from console.ui import NOTICE_KEY, SESSION_KEY, hub_url

st.title("hub console")
st.caption("Compliance and operations. Every page asks the hub's API as you; policy decides.")
notice = st.session_state.pop(NOTICE_KEY, None)
if notice:
    st.warning(notice)
username = st.text_input("Username", key="login_username")
password = st.text_input("Password", type="password", key="login_password")
totp = st.text_input("TOTP code (if your account has one)", key="login_totp", max_chars=10)
if st.button("Log in", key="login_submit", type="primary"):
    if not username or not password:
        st.error("Enter your username and password.")
    else:
        try:
            st.session_state[SESSION_KEY] = login(hub_url(), username, password, totp or None)
        except HubUnreachableError as exc:
            st.error(f"Hub unreachable: {exc}", icon="🔌")
        except ConsoleError as exc:
            st.error(f"Login refused: {getattr(exc, 'detail', exc)}", icon="🔒")
        else:
            st.session_state.pop("login_password", None)
            st.rerun()
