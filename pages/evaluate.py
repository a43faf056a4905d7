"""Evaluate: score retrieval on your own questions (JSONL or CSV), per mode, and see the misses."""

from pathlib import Path

import streamlit as st

from pages.common import get_engine, require_router, top_k
from rag_core import analysis
from rag_core.config import MODES
from rag_core.display import escape_markdown
from rag_core.evaluation import QAFormatError, parse_qa

SAMPLE_QA = Path(__file__).resolve().parent.parent / "rag_core" / "samples" / "sample_qa.jsonl"

require_router("pages/evaluate.py")
engine = get_engine()
st.title("Evaluate")
st.caption(
    "Upload questions with the document and page that answer them: JSON Lines "
    '(`{"question": ..., "document": "handbook.pdf", "pages": [4]}`, as in the eval set) or a CSV with '
    "the columns `question, document, page`. A hit at k: one of the top k passages is from that document "
    "and page. Questions with no document count for the refusal rate instead."
)

if not engine.documents():
    st.info("The knowledge base is empty: add documents (or the sample policy) first.")
    st.page_link("pages/documents.py", label="Go to Documents", icon=":material/description:")
    st.stop()

upload = st.file_uploader("Questions file", type=["jsonl", "json", "csv"], key="evaluate_upload")
use_sample = st.checkbox(
    "Use the sample questions (for the sample HR policy)", key="evaluate_sample", disabled=upload is not None
)
modes = st.multiselect("Retrieval modes", MODES, default=list(MODES), key="evaluate_modes")

source = (upload.name, upload.getvalue()) if upload is not None else None
if source is None and use_sample:
    source = (SAMPLE_QA.name, SAMPLE_QA.read_bytes())
if source is None or not modes:
    st.stop()

try:
    items = parse_qa(source[1], source[0])
except QAFormatError as e:
    st.error(escape_markdown(str(e)))
    st.stop()

with st.spinner(f"Scoring {len(items)} questions in {len(modes)} mode(s)…"):
    reports = engine.evaluate(items, modes, k=top_k())

st.dataframe(
    [
        {
            "mode": m,
            "questions": r.n,
            "hit@1": round(r.hit_at[1], 3),
            "hit@3": round(r.hit_at[3], 3),
            "hit@5": round(r.hit_at[5], 3),
            "MRR": round(r.mrr, 3),
            "refused unanswerable": None if r.refused_unanswerable is None else round(r.refused_unanswerable, 3),
        }
        for m, r in reports.items()
    ],
    hide_index=True,
    key="evaluate_table",
)
st.plotly_chart(analysis.metrics_figure(reports), width="stretch", key="evaluate_chart")

shown = st.selectbox("Misses of mode", list(reports), key="evaluate_misses_mode")
misses = [q for q in reports[shown].questions if q["hit_rank"] is None]
st.subheader(f"Misses ({len(misses)})")
if misses:
    st.dataframe(
        [
            {
                "question": q["question"],
                "expected": f"{q['document']} p. {', '.join(str(p) for p in q['pages'])}",  # type: ignore[attr-defined]
                "retrieved instead (top hit)": f"{q['top_document']} p. {q['top_page']}",
                "score": q["top_score"],
            }
            for q in misses
        ],
        hide_index=True,
        key="evaluate_misses",
    )
else:
    st.success("Every answerable question found its page in the top k.")
