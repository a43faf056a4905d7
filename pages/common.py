"""What every page shares: the one engine per process, and the sidebar settings per user.

Not a page itself (app.py lists the pages). Models are loaded once per process with
`st.cache_resource`; the knowledge base is one shared store for everyone using the app.
"""

from __future__ import annotations

import streamlit as st

from rag_core.config import METRICS, MODES, Settings
from rag_core.pipeline import Engine

ROUTER_FLAG = "policypal_router_ran"
TARGET_KEY = "policypal_target_page"


def require_router(page: str) -> None:
    """Hand over to app.py when Streamlit ran this page script directly.

    Streamlit's legacy `pages/` discovery is active until some session has run `st.navigation`: the
    very first visitor of a fresh server who opens /chat directly would get the bare page, without
    the router's settings. Then we go through app.py, which sends them on to the page they asked for.
    """
    if not st.session_state.get(ROUTER_FLAG):
        st.session_state[TARGET_KEY] = page
        st.switch_page("app.py")


@st.cache_resource(show_spinner="Loading the embedding model…")
def _engine(data_dir: str) -> Engine:
    engine = Engine(Settings.from_env(data_dir=data_dir))
    _ = engine.embedder  # load now, once, rather than inside the first user's request
    return engine


def get_engine() -> Engine:
    return _engine(str(Settings.from_env().data_dir))


def sidebar_settings() -> None:
    defaults = Settings.from_env()
    with st.sidebar:
        st.subheader("Settings")
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
        st.caption(f"Knowledge base: `{defaults.data_dir}`")


def top_k() -> int:
    return int(st.session_state.get("settings_top_k", Settings.from_env().top_k))


def metric() -> str:
    return str(st.session_state.get("settings_metric", Settings.from_env().metric))


def generator() -> str:
    value = str(st.session_state.get("settings_generator", "")).strip()
    return value or Settings.from_env().generator


def mode() -> str:
    return str(st.session_state.get("settings_mode", Settings.from_env().mode))
