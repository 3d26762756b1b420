"""Signed out: say why, and link to the sign-in form, which returns to the page asked for."""

from urllib.parse import quote, urlparse

import streamlit as st

from console.ui import NOTICE_KEY

st.title("hub console")
st.caption("Compliance and operations. Every page asks the hub's API as you; policy decides.")
notice = st.session_state.pop(NOTICE_KEY, None)
if notice:
    st.warning(notice)
path = urlparse(st.context.url or "/").path or "/"
st.markdown(
    f'<a href="/signin?next={quote(path, safe="/")}" target="_self" id="signin-link">'
    "Sign in</a> with your username, password and (for accounts that have it) a TOTP code.",
    unsafe_allow_html=True,
)
