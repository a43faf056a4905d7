"""What every page shares: the one engine per process, and the sidebar settings per user.

Not a page itself (app.py lists the pages). Models are loaded once per process with
`st.cache_resource`; the knowledge base is one shared store for everyone using the app.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Sequence
from typing import TypeVar

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from rag_core.config import Settings
from rag_core.engine import Engine, serving_engine
from rag_core.jobs import JobQueue, JobWorker, open_job_queue
from rag_core.types import METRICS, MODES, Metric, Mode

T = TypeVar("T", bound=str)

ROUTER_FLAG = "policypal_router_ran"
TARGET_KEY = "policypal_target_page"


def require_router(page: str) -> None:
    """Hand over to app.py when Streamlit ran this page script directly.

    Streamlit's legacy `pages/` discovery is active until some session has run `st.navigation`: the
    very first visitor of a fresh server who opens /chat directly would get the bare page, without
    the router's settings. Then we go through app.py, which sends them on to the page they asked for.
    """
    if not st.session_state.get(ROUTER_FLAG) or not access_granted():  # app.py holds the password gate
        st.session_state[TARGET_KEY] = page
        st.switch_page("app.py")
    sidebar_settings()  # drawn by the page's run, so every rerun of the page keeps it


@st.cache_resource(show_spinner="Loading the embedding model…")
def _engine(data_dir: str) -> Engine:
    engine = serving_engine(Settings.from_env(data_dir=data_dir))
    _ = engine.embedder  # load now, once, rather than inside the first user's request
    return engine


def get_engine() -> Engine:
    return _engine(str(Settings.from_env().data_dir))


@st.cache_resource(show_spinner=False)
def _job_queue(data_dir: str, database_url: str | None) -> JobQueue:
    """The upload queue (in the data dir, or in the PostgreSQL database every server shares), with this
    server's worker thread running its jobs (one per process)."""
    queue = open_job_queue(Settings.from_env(data_dir=data_dir, database_url=database_url))
    JobWorker(_engine(data_dir), queue).start()
    return queue


def get_job_queue() -> JobQueue:
    settings = Settings.from_env()
    return _job_queue(str(settings.data_dir), settings.database_url)


def stop_if_empty(engine: Engine) -> None:
    """With no documents, say so and point to the Documents page instead of drawing an empty page."""
    if engine.is_empty():
        st.info("The knowledge base is empty: add documents (or the sample policy) first.")
        st.page_link("pages/documents.py", label="Go to Documents", icon=":material/description:")
        st.stop()


def sidebar_settings() -> None:
    """Administrators get the Advanced settings; employees get none (the defaults are the measured best)
    and a way to sign in as an administrator."""
    defaults = Settings.from_env()
    if not is_admin():
        with st.sidebar:
            admin_sign_in()
        return
    with st.sidebar.expander("Advanced settings", icon=":material/tune:"):
        st.slider("Passages to retrieve (top-k)", 1, 20, defaults.top_k, key="settings_top_k")
        st.selectbox(
            "Similarity metric",
            METRICS,
            index=METRICS.index(defaults.metric),
            key="settings_metric",
            help="Cosine, dot product and L2 rank alike for normalised embeddings (the default model's).",
        )
        st.selectbox(
            "Retrieval mode",
            MODES,
            index=MODES.index(defaults.mode),
            key="settings_mode",
            help="dense: embeddings (paraphrases); bm25: keywords (exact terms, clause numbers); "
            "hybrid: both, fused (the default, best measured).",
        )
        st.text_input(
            "Answer generator",
            value=defaults.generator,
            key="settings_generator",
            help="extractive (quotes the documents, no model needed), hf:<model id or local dir> "
            "(a local language model), or openai:<base url>#<model> (Ollama, vLLM, llama.cpp server).",
        )
        st.caption(
            f"Refusal thresholds: similarity below {defaults.min_score:g} (`RAG_MIN_SCORE`) or question "
            f'coverage below {defaults.min_coverage:g} (`RAG_MIN_COVERAGE`) answers "the documents do not '
            'cover this".'
        )
        where = "PostgreSQL (RAG_DATABASE_URL)" if defaults.database_url else f"`{defaults.data_dir}`"
        st.caption(f"Knowledge base: {where}")


def top_k() -> int:
    return int(st.session_state.get("settings_top_k", Settings.from_env().top_k))


def _choice(key: str, options: Sequence[T], default: T) -> T:
    """The sidebar's value for `key` if it is one of `options`, else the default."""
    value = st.session_state.get(key)
    return next((o for o in options if o == value), default)


def metric() -> Metric:
    return _choice("settings_metric", METRICS, Settings.from_env().metric)


def generator() -> str:
    value = str(st.session_state.get("settings_generator", "")).strip()
    return value or Settings.from_env().generator


def mode() -> Mode:
    return _choice("settings_mode", MODES, Settings.from_env().mode)


# ---------------------------------------------------------------------------- access
#
# Two optional passwords, each from the environment or, failing that, from `.streamlit/secrets.toml`:
# RAG_APP_PASSWORD / app_password gates every page; RAG_ADMIN_PASSWORD / admin_password restricts
# uploads, the sample and deletes. A session that signed in holds a digest of the password, checked on
# every run, so changing the password signs everyone out. Comparisons are constant-time digests.

APP_PASSWORD_ENV = "RAG_APP_PASSWORD"
ADMIN_PASSWORD_ENV = "RAG_ADMIN_PASSWORD"
_ACCESS_TOKEN = "access_token"
_ADMIN_TOKEN = "access_admin_token"


def configured_password(env_var: str, secret: str) -> str | None:
    """The password set in `env_var`, else in st.secrets[`secret`]; None when neither sets one."""
    value = os.environ.get(env_var, "")
    if not value:
        try:
            value = str(st.secrets.get(secret) or "")
        except (FileNotFoundError, KeyError):  # no secrets.toml at all, or an unreadable one
            value = ""
    return value or None


def _digest(password: str) -> str:
    return hashlib.sha256(f"policypal-access:{password}".encode()).hexdigest()


def _matches(entered: str, password: str) -> bool:
    """Constant-time, and equal-length inputs so not even the password's length leaks."""
    return hmac.compare_digest(_digest(entered), _digest(password))


def _holds(token_key: str, password: str | None) -> bool:
    token = st.session_state.get(token_key)
    return password is not None and isinstance(token, str) and hmac.compare_digest(token, _digest(password))


def access_granted() -> bool:
    """May this session see the pages? Yes when no app password is set, or after sign-in."""
    password = configured_password(APP_PASSWORD_ENV, "app_password")
    admin = configured_password(ADMIN_PASSWORD_ENV, "admin_password")
    return password is None or _holds(_ACCESS_TOKEN, password) or _holds(_ADMIN_TOKEN, admin)


def require_access(pages: Sequence[StreamlitPage] = ()) -> None:
    """Called by app.py before anything else: the password form, alone, until the right one is given.

    With no app password set the app is open, and the sidebar says so. `pages` are the app's pages: the
    form answers at each of their addresses, so /chat shows the form and, after sign-in, the chat.
    Every page checks again (`require_router`), so a page script run directly never shows anything.
    """
    password = configured_password(APP_PASSWORD_ENV, "app_password")
    admin = configured_password(ADMIN_PASSWORD_ENV, "admin_password")
    if password is None:
        if not is_admin():
            return  # employees are not told how the server is configured
        st.sidebar.caption(
            ":material/lock_open: Open access: no password is set, so anyone who can reach this server can use "
            f"PolicyPal. Set `{APP_PASSWORD_ENV}` to require one."
        )
        return
    if access_granted():
        if st.sidebar.button("Sign out", icon=":material/logout:", key="access_sign_out"):
            st.session_state.pop(_ACCESS_TOKEN, None)
            st.session_state.pop(_ADMIN_TOKEN, None)
            st.rerun()
        return

    def sign_in() -> None:
        st.title("PolicyPal")
        st.caption("This PolicyPal is protected by a password. Ask your administrator for it.")
        with st.form("access_form"):
            entered = st.text_input("Password", type="password", key="access_password")
            submitted = st.form_submit_button("Sign in", type="primary")
        if submitted:
            if _matches(entered, password):
                st.session_state[_ACCESS_TOKEN] = _digest(password)
                st.rerun()
            if admin is not None and _matches(entered, admin):  # an administrator needs one password, not two
                st.session_state[_ADMIN_TOKEN] = _digest(admin)
                st.session_state[_ACCESS_TOKEN] = _digest(password)
                st.rerun()
            time.sleep(1)  # a brake on guessing
            st.error("Wrong password. Try again, or ask your administrator for the PolicyPal password.")

    # The only page there is until the password is given: no other page's name, sidebar or content.
    paths = ["sign-in", *(p.url_path for p in pages if p.url_path and p.url_path != "sign-in")]
    gate = [
        st.Page(sign_in, title="Sign in", icon=":material/lock:", url_path=path, default=(i == 0))
        for i, path in enumerate(paths)
    ]
    st.navigation(gate, position="hidden").run()
    st.stop()


def is_admin() -> bool:
    """May this session upload and delete? Yes when no admin password is set, or after admin sign-in."""
    admin = configured_password(ADMIN_PASSWORD_ENV, "admin_password")
    return admin is None or _holds(_ADMIN_TOKEN, admin)


def admin_sign_in() -> None:
    """A small form to become an administrator for this session (only when an admin password is set)."""
    admin = configured_password(ADMIN_PASSWORD_ENV, "admin_password")
    if admin is None:
        return
    with st.expander("Administrator sign-in", icon=":material/admin_panel_settings:"):
        with st.form("admin_form"):
            entered = st.text_input("Administrator password", type="password", key="access_admin_password")
            submitted = st.form_submit_button("Sign in as administrator")
        if submitted:
            if _matches(entered, admin):
                st.session_state[_ADMIN_TOKEN] = _digest(admin)
                st.rerun()
            time.sleep(1)
            st.error("Wrong administrator password.")
