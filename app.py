"""PolicyPal: the Streamlit entry point. Router and frame only: page config, the password gate, navigation."""

import streamlit as st

from pages.common import ROUTER_FLAG, TARGET_KEY, get_job_queue, is_admin, require_access

st.set_page_config(page_title="PolicyPal", page_icon=":material/menu_book:", layout="wide")
admin = is_admin()
# Two audiences: employees ask (Chat) and see which documents the bot knows; HR administrators also
# manage the documents and look inside (Analysis, Evaluate). An employee's first page is the chat.
pages = [
    st.Page(
        "pages/documents.py", title="Documents", icon=":material/description:", url_path="documents", default=admin
    ),
    st.Page("pages/chat.py", title="Chat", icon=":material/chat:", url_path="chat", default=not admin),
]
if admin:
    pages += [
        st.Page("pages/analysis.py", title="Analysis", icon=":material/scatter_plot:", url_path="analysis"),
        st.Page("pages/evaluate.py", title="Evaluate", icon=":material/fact_check:", url_path="evaluate"),
        st.Page("pages/insights.py", title="Insights", icon=":material/insights:", url_path="insights"),
    ]
require_access(pages)  # the password form and nothing else, when RAG_APP_PASSWORD is set
st.session_state[ROUTER_FLAG] = True  # only now: a page run directly before sign-in comes back here
get_job_queue()  # this server's upload worker: it also resumes the jobs of a server that was stopped mid-upload

navigation = st.navigation(pages if admin else [pages[1], pages[0]])
if target := st.session_state.pop(TARGET_KEY, None):
    st.switch_page(target)  # a visitor who arrived on a page URL before the router ever ran
navigation.run()  # each page draws the sidebar's settings (pages.common.require_router)
