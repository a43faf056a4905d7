"""PolicyPal: the Streamlit entry point. Router and frame only: page config, navigation, sidebar settings."""

import streamlit as st

from pages.common import ROUTER_FLAG, TARGET_KEY, get_job_queue, require_access, sidebar_settings

st.set_page_config(page_title="PolicyPal", page_icon=":material/menu_book:", layout="wide")
pages = [
    st.Page("pages/documents.py", title="Documents", icon=":material/description:", url_path="documents", default=True),
    st.Page("pages/chat.py", title="Chat", icon=":material/chat:", url_path="chat"),
    st.Page("pages/analysis.py", title="Analysis", icon=":material/scatter_plot:", url_path="analysis"),
    st.Page("pages/evaluate.py", title="Evaluate", icon=":material/fact_check:", url_path="evaluate"),
]
require_access(pages)  # the password form and nothing else, when RAG_APP_PASSWORD is set
st.session_state[ROUTER_FLAG] = True  # only now: a page run directly before sign-in comes back here
get_job_queue()  # this server's upload worker: it also resumes the jobs of a server that was stopped mid-upload

navigation = st.navigation(pages)
if target := st.session_state.pop(TARGET_KEY, None):
    st.switch_page(target)  # a visitor who arrived on a page URL before the router ever ran
sidebar_settings()
navigation.run()
