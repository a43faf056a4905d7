"""Insights (administrators): what employees ask, which documents answer them, and what the documents
do not cover, grouped into topics; thumbs-down answers with their reasons; each table as CSV."""

import streamlit as st

from pages.common import get_engine, require_router
from rag_core.display import escape_markdown, friendly_time
from rag_core.insights import report_csv

require_router("pages/insights.py")
engine = get_engine()
st.title("Insights")

if not engine.questions.enabled:
    st.info("Questions are not logged on this server (RAG_LOG_QUESTIONS=0), so there is nothing to show.")
    st.stop()

days = st.segmented_control("Period", [7, 30, 90, 365], default=30, format_func=lambda d: f"{d} days", key="ins_days")
report = engine.questions.report(days or 30)
zone = st.context.timezone

asked, refused, weak = st.columns(3)
asked.metric("Questions", report.questions)
refused.metric("Not covered (refused)", report.refused)
weak.metric("Weakly grounded", report.weak)
if not report.questions:
    st.info(f"No questions in the last {report.days} days yet.")
    st.stop()


def download(table: str, label: str) -> None:
    st.download_button(
        f"Download {label} (CSV)",
        report_csv(report, table),
        f"policypal-{table.replace('_', '-')}-{report.days}d.csv",
        "text/csv",
        key=f"ins_csv_{table}",
    )


st.subheader("What employees asked that our documents don't cover")
st.caption(
    "Questions the bot refused or answered from a weak match, grouped by topic (most recent first). "
    "Each topic is a gap to close: add or update a document that answers it."
)
if not report.topics:
    st.success("Every question in this period was answered from the documents.")
for topic in report.topics:
    with st.expander(
        f"{escape_markdown(topic.label)} · {topic.count} question(s) · last {friendly_time(topic.last_asked, zone)}",
        expanded=True,
    ):
        for example in topic.examples:
            st.markdown(f"- {escape_markdown(example)}")
download("topics", "topics")

st.subheader("Questions per day")
st.bar_chart(
    {"day": [d.date for d in report.per_day], "answered": [d.questions - d.refused for d in report.per_day],
     "not covered": [d.refused for d in report.per_day]},
    x="day",
    y=["answered", "not covered"],
    height=240,
)  # fmt: skip
download("per_day", "questions per day")

left, right = st.columns(2)
with left:
    st.subheader("Most-cited documents")
    st.dataframe(
        [{"document": c.document, "citations": c.citations} for c in report.documents], hide_index=True, width="stretch"
    )
    download("documents", "documents")
with right:
    st.subheader("Most-cited pages")
    st.dataframe(
        [{"document": c.document, "page": c.page, "citations": c.citations} for c in report.pages],
        hide_index=True,
        width="stretch",
    )
    download("pages", "pages")

st.subheader(f"Thumbs-down answers ({len(report.thumbs_down)})")
if report.thumbs_down:
    st.dataframe(
        [
            {
                "asked": friendly_time(q.asked_at, zone),
                "question": q.question,
                "reason": q.reason or "",
                "answer": q.answer,
            }
            for q in report.thumbs_down
        ],
        hide_index=True,
        width="stretch",
    )
    download("thumbs_down", "thumbs-down answers")
else:
    st.caption("No answer was given a thumbs down in this period.")
