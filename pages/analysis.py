"""Analysis: the embedding map with the query placed on it, top-k scores, metrics, document similarity,
and employees' questions on the map (which regions are asked about, which questions find no document)."""

from __future__ import annotations

import streamlit as st

from pages.common import get_engine, require_router, stop_if_empty, top_k
from rag_core import figures, maps
from rag_core.display import escape_markdown
from rag_core.engine import Engine
from rag_core.map_questions import question_points, questions_summary

QUESTION_DAYS = 90  # how far back the overlay looks in the question log


def questions_for_map(engine: Engine) -> list[tuple[str, bool]]:
    """(question, refused) for every logged question of the last QUESTION_DAYS days; none when
    questions are not logged (RAG_LOG_QUESTIONS=0)."""
    if not engine.questions.enabled:
        return []
    return [(r.question, not r.grounded) for r in engine.questions.log.questions(QUESTION_DAYS)]


require_router("pages/analysis.py")
engine = get_engine()
st.title("Analysis")

stop_if_empty(engine)

c1, c2, c3, c4 = st.columns([1, 1, 2, 1])
method = c1.selectbox("Projection", maps.METHODS, format_func=str.upper, key="analysis_method")
perplexity = c2.slider("Perplexity (t-SNE)", 5, 50, 30, key="analysis_perplexity", disabled=method != "tsne")
query = c3.text_input("Query to place on the map", key="analysis_query", placeholder="e.g. How many vacation days?")
colour = c4.radio(
    "Colour by",
    maps.COLOURINGS,
    format_func={"document": "document", "dense": "dense score", "bm25": "BM25 score"}.__getitem__,
    key="analysis_colour",
    disabled=not query.strip(),
    help="With a query: colour every chunk by its dense (cosine) or BM25 score, to see where semantic "
    "and keyword neighbours differ.",
)
show_questions = st.toggle(
    "Show employees' questions",
    key="analysis_questions",
    help="Questions asked in the chat, placed by the passages nearest to them: diamonds were answered, "
    "red crosses were refused, orange hexagons mark questions far from any document.",
)

with st.spinner("Projecting the embeddings (cached until the documents change)…"):
    view = engine.query_view(
        query,
        method=method,
        perplexity=float(perplexity),
        k=top_k(),
        colour=colour if query.strip() else "document",
    )

points = (
    question_points(view.emap, questions_for_map(engine), engine.searcher.encode, engine.settings.min_score)
    if show_questions
    else []
)
if view.emap.placed:
    st.info(
        f"{view.emap.placed} new passages placed approximately; the full map is being recomputed "
        "and replaces this one when it is ready."
    )

    @st.fragment(run_every=5)
    def reload_when_the_full_map_lands() -> None:
        if maps.map_is_cached(engine.store, method, float(perplexity)):
            st.rerun()

    reload_when_the_full_map_lands()
st.plotly_chart(figures.query_map_figure(view, points), width="stretch", key="analysis_map")
if show_questions:
    st.caption(escape_markdown(questions_summary(points)))

if view.hits:
    st.plotly_chart(figures.scores_figure(view.hits), width="stretch", key="analysis_scores")
    st.markdown("**Top-k under each metric**")
    st.caption(maps.METRICS_EXPLAINED)
    st.dataframe(
        maps.metric_table(view.by_metric),
        hide_index=True,
        width="stretch",
        key="analysis_metrics",
        column_config={"rank": st.column_config.NumberColumn("rank", width="small")},
    )
    st.caption(escape_markdown(view.agreement))

labels, matrix = engine.document_similarity()
if len(labels) > 1:
    st.plotly_chart(figures.heatmap_figure(labels, matrix), width="stretch", key="analysis_heatmap")
