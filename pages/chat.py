"""Chat: ask the HR-policy bot; every answer shows its passages with document, page and score.

Employees see the answer and its passages in plain words; administrators also see how each passage
was ranked, the exact prompt, and can compare with an answer given without retrieval."""

import streamlit as st

from pages.common import generator, get_engine, is_admin, metric, mode, require_router, stop_if_empty, top_k
from rag_core.answer import AnswerStream, GeneratorError
from rag_core.conversation import ChatMessage, export_json, export_markdown
from rag_core.display import (
    PLAIN_SIMILARITY_NOTE,
    SIMILARITY_NOTE,
    escape_markdown,
    evidence_label,
    evidence_order,
    highlight,
    query_terms,
    retrieval_detail,
)
from rag_core.types import FEEDBACK_REASONS

require_router("pages/chat.py")
engine = get_engine()
admin = is_admin()
st.title("Chat")

stop_if_empty(engine)
if note := engine.questions.note:
    st.caption(note)

messages: list[ChatMessage] = st.session_state.setdefault("chat_messages", [])
compare = admin and st.toggle(
    "Compare with an answer without retrieval",
    key="chat_compare",
    help="The seed lab's experiment: the same generator answers once with the retrieved passages and "
    "once without them, side by side.",
)


def show_evidence(message: ChatMessage, question: str) -> None:
    if message.warning:
        st.warning(escape_markdown(message.warning), icon=":material/warning:")
    terms = query_terms(question)
    # The passages the answer cites come first, the first one open; the number stays the answer's [n].
    ordered = evidence_order(message.hits, [c.number for c in message.citations])
    if ordered:
        st.caption(SIMILARITY_NOTE if admin else PLAIN_SIMILARITY_NOTE)
    for position, (number, hit, cited) in enumerate(ordered):
        opened = position == 0 and cited and message.grounded
        with st.expander(escape_markdown(evidence_label(number, hit)), expanded=opened):
            if admin:
                st.caption(retrieval_detail(hit))
            st.markdown(highlight(hit.text, terms))
    if message.prompt and admin:
        with st.expander("Prompt sent"):
            st.code(message.prompt, language=None, wrap_lines=True)


def show_message(m: ChatMessage, question: str) -> None:
    st.markdown(escape_markdown(m.content))
    if m.role == "assistant":
        show_evidence(m, question)
        show_feedback(m)


def show_feedback(m: ChatMessage) -> None:
    """Thumbs up or down on a logged answer, and for a thumbs down an optional reason; each choice is
    stored at once (a later one replaces it)."""
    qid = m.question_id
    if qid is None:
        return

    def send() -> None:
        vote = st.session_state.get(f"chat_vote_{qid}")
        if vote is not None:
            reason = st.session_state.get(f"chat_reason_{qid}") if vote == 0 else None
            engine.questions.feedback(qid, up=vote == 1, reason=reason)

    st.feedback("thumbs", key=f"chat_vote_{qid}", on_change=send)
    if st.session_state.get(f"chat_vote_{qid}") == 0:
        st.pills("What was wrong? (optional)", FEEDBACK_REASONS, key=f"chat_reason_{qid}", on_change=send)


def stream_reply(stream: AnswerStream) -> ChatMessage:
    """Write the answer as it streams; a generator failing mid-answer keeps what came and says so."""
    try:
        st.write_stream(escape_markdown(piece) for piece in stream)
    except GeneratorError as e:
        st.error(escape_markdown(f"The generator stopped: {e}"))
    answer = stream.result()
    reply = ChatMessage.from_answer(answer)
    show_evidence(reply, stream.question)
    return reply


previous: list[str] = []
for m in messages:
    if m.role == "user":
        previous.append(m.content)
    with st.chat_message(m.role):
        show_message(m, previous[-1] if previous else "")
        if m.role == "assistant" and m.without_context is not None:
            with st.expander("Without retrieval"):
                st.markdown(escape_markdown(m.without_context))

if prompt := st.chat_input("Ask about your company's policies", key="chat_input"):
    history = [m.content for m in messages if m.role == "user"]
    messages.append(ChatMessage(role="user", content=prompt))
    with st.chat_message("user"):
        st.markdown(escape_markdown(prompt))
    with st.chat_message("assistant"):

        def ask(question: str, no_context: bool = False) -> ChatMessage:
            stream = engine.answer_stream(
                question,
                history=history,
                k=top_k(),
                metric=metric(),
                generator=generator(),
                mode=mode(),
                no_context=no_context,
            )
            reply = stream_reply(stream)
            if not no_context:  # what employees asked, for HR's Insights (when logging is on)
                reply.question_id = engine.questions.record(stream.result())
            return reply

        if compare:
            with_col, without_col = st.columns(2)
            with with_col:
                st.caption("With retrieved passages")
                reply = ask(prompt)
            with without_col:
                st.caption("Without retrieval (the generator alone)")
                bare = ask(prompt, no_context=True)
            reply.without_context = bare.content
        else:
            reply = ask(prompt)
        messages.append(reply)
        show_feedback(reply)

if messages:
    left, middle, right = st.columns([1, 1, 4])
    left.download_button(
        "Export Markdown", export_markdown(messages), "policypal-chat.md", "text/markdown", key="chat_export_md"
    )
    middle.download_button(
        "Export JSON", export_json(messages), "policypal-chat.json", "application/json", key="chat_export_json"
    )
    if right.button("Clear conversation", key="chat_clear"):
        st.session_state["chat_messages"] = []
        st.rerun()
