"""Chat: ask the HR-policy bot; every answer shows its passages with document, page and score."""

import streamlit as st

from pages.common import get_engine, metric, require_router, top_k
from rag_core.conversation import ChatMessage, export_json, export_markdown
from rag_core.display import escape_markdown, highlight, query_terms

require_router("pages/chat.py")
engine = get_engine()
st.title("Chat")

if not engine.documents():
    st.info("The knowledge base is empty: add documents (or the sample policy) first.")
    st.page_link("pages/documents.py", label="Go to Documents", icon=":material/description:")
    st.stop()

messages: list[ChatMessage] = st.session_state.setdefault("chat_messages", [])


def show_evidence(message: ChatMessage, question: str) -> None:
    terms = query_terms(question)
    for i, hit in enumerate(message.hits, 1):
        label = f"[{i}] {hit['document']} · page {hit['page']} · score {float(hit['score']):.3f}"  # type: ignore[arg-type]
        with st.expander(escape_markdown(label), expanded=(i == 1)):
            st.markdown(highlight(str(hit["text"]), terms))
    if message.prompt:
        with st.expander("Prompt sent"):
            st.code(message.prompt, language=None, wrap_lines=True)


question_for: dict[int, str] = {}
last_question = ""
for n, m in enumerate(messages):
    if m.role == "user":
        last_question = m.content
    question_for[n] = last_question
    with st.chat_message(m.role):
        st.markdown(escape_markdown(m.content))
        if m.role == "assistant":
            show_evidence(m, question_for[n])

if prompt := st.chat_input("Ask about your company's policies", key="chat_input"):
    messages.append(ChatMessage(role="user", content=prompt))
    with st.chat_message("user"):
        st.markdown(escape_markdown(prompt))
    with st.chat_message("assistant"), st.spinner("Searching the documents…"):
        answer = engine.answer(prompt, k=top_k(), metric=metric())
        reply = ChatMessage.from_answer(answer)
        messages.append(reply)
        st.markdown(escape_markdown(reply.content))
        show_evidence(reply, prompt)

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
