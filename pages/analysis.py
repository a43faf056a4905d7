"""Analysis: the embedding map with the query placed on it, top-k scores, metrics, document similarity."""

import streamlit as st

from pages.common import get_engine, require_router, stop_if_empty, top_k
from rag_core import figures, maps
from rag_core.display import escape_markdown

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

with st.spinner("Projecting the embeddings (cached until the documents change)…"):
    view = engine.query_view(
        query,
        method=method,
        perplexity=float(perplexity),
        k=top_k(),
        colour=colour if query.strip() else "document",
    )

st.plotly_chart(figures.query_map_figure(view), width="stretch", key="analysis_map")

if view.hits:
    left, right = st.columns([1, 1])
    left.plotly_chart(figures.scores_figure(view.hits), width="stretch", key="analysis_scores")
    with right:
        st.markdown("**Top-k under each metric**")
        st.caption(maps.METRICS_EXPLAINED)
        st.dataframe(maps.metric_table(view.by_metric), hide_index=True, key="analysis_metrics")
        st.caption(escape_markdown(view.agreement))

labels, matrix = engine.document_similarity()
if len(labels) > 1:
    st.plotly_chart(figures.heatmap_figure(labels, matrix), width="stretch", key="analysis_heatmap")
