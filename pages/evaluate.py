"""Evaluate: score retrieval on your own questions (JSONL or CSV), per mode, and see the misses."""

import streamlit as st

from pages.common import get_engine, require_router, stop_if_empty, top_k
from rag_core.compare import answer_rows, compare
from rag_core.compare import summary_rows as compare_rows
from rag_core.display import escape_markdown
from rag_core.evaluation import SAMPLE_QA, QAFormatError, miss_rows, missing_documents, parse_qa, summary_rows
from rag_core.figures import compare_figure, metrics_figure
from rag_core.types import MODES

require_router("pages/evaluate.py")
engine = get_engine()
st.title("Evaluate")
st.caption(
    "Upload questions with the document and page that answer them: JSON Lines "
    '(`{"question": ..., "document": "handbook.pdf", "pages": [4]}`, as in the eval set) or a CSV with '
    "the columns `question, document, page`. A hit at k: one of the top k passages is from that document "
    "and page. Questions with no document count for the refusal rate instead."
)

stop_if_empty(engine)

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

if missing := missing_documents(items, [d.name for d in engine.documents()]):
    st.warning(
        f"{len(missing)} document(s) these questions are about are not in the knowledge base, so their "
        f"questions can only miss: {escape_markdown(', '.join(missing))}. "
        + ("Load the sample HR policy on the Documents page first." if source[0] == SAMPLE_QA.name else ""),
        icon=":material/warning:",
    )
with st.spinner(f"Scoring {len(items)} questions in {len(modes)} mode(s)…"):
    reports = engine.evaluate(items, modes, k=top_k())

st.dataframe(summary_rows(reports), hide_index=True, key="evaluate_table")
st.plotly_chart(metrics_figure(reports), width="stretch", key="evaluate_chart")

shown = st.selectbox("Misses of mode", list(reports), key="evaluate_misses_mode")
misses = miss_rows(reports[shown])
st.subheader(f"Misses ({len(misses)})")
if misses:
    st.dataframe(misses, hide_index=True, key="evaluate_misses")
else:
    st.success("Every answerable question found its page in the top k.")

st.divider()
st.subheader("Fine-tuning vs retrieval")
st.caption(
    "Answer the same questions with a local language model without context and with the retrieved passages, "
    "and with its LoRA adapter (trained by `python -m rag_core finetune --base hf:DIR --out ADAPTER`) both "
    "ways; the extractive answerer is the baseline that needs no model. Models are local directories: "
    "nothing is downloaded."
)
with st.form("compare_form"):
    base = st.text_input("Base model", placeholder="hf:/models/gpt2", key="compare_base")
    adapter = st.text_input("Fine-tuned adapter (optional)", placeholder="hf:/models/gpt2-policies", key="compare_ft")
    run = st.form_submit_button("Compare", type="primary")
if run:
    if not base.strip():
        st.error("Give the base model's directory as hf:/path/to/model.")
        st.stop()
    progress = st.progress(0.0, text="Answering…")

    def on_answer(done: int, total: int, arm: str) -> None:
        progress.progress(done / total, text=f"{arm}: {done} of {total}")

    try:
        st.session_state["compare_report"] = compare(
            engine,
            items,
            base.strip(),
            adapter.strip() or None,
            k=top_k(),
            on_answer=on_answer,
        )
    except ValueError as e:
        st.session_state.pop("compare_report", None)
        st.error(escape_markdown(str(e)))
    progress.empty()
if (report := st.session_state.get("compare_report")) is not None:
    if report.drift is not None:
        (st.warning if report.drift.changed else st.info)(escape_markdown(report.drift.note()))
    st.dataframe(compare_rows(report), hide_index=True, key="compare_table")
    st.plotly_chart(compare_figure(report), width="stretch", key="compare_chart")
    st.dataframe(answer_rows(report), hide_index=True, key="compare_answers")
