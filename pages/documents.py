"""Documents: upload (several files at once), ingest with progress, list, delete with confirmation."""

import streamlit as st

from pages.common import admin_sign_in, get_engine, is_admin, require_router
from rag_core.display import escape_markdown, ocr_note
from rag_core.ingest import BatchTooLarge
from rag_core.types import IngestResult, Stage

require_router("pages/documents.py")
engine = get_engine()
settings = engine.settings
can_edit = is_admin()  # uploads, the sample and deletes may be restricted to administrators

st.title("Documents")
if not can_edit:
    st.info(
        "You can see which documents PolicyPal knows. Adding and deleting them is restricted to "
        "administrators: sign in below if you are one.",
        icon=":material/visibility:",
    )
    admin_sign_in()
else:
    st.caption(
        "Upload PDF, Word (.docx), PowerPoint (.pptx), Excel (.xlsx), HTML, TXT or Markdown files; scanned "
        "PDF pages are read by OCR. "
        f"Each file may be up to {settings.max_file_mb:g} MB and "
        f"{settings.max_pages} pages, {settings.max_files_per_batch} files per batch (the upload limit is set "
        "in `.streamlit/config.toml`, the engine's in `RAG_MAX_FILE_MB`). The same file uploaded twice is "
        "stored once."
    )


def show_result(r: IngestResult) -> None:
    name = escape_markdown(r.file)
    if r.status == "added":
        st.success(
            f"**{name}**: added, {r.pages} pages, {r.chunks} chunks{ocr_note(r)}", icon=":material/check_circle:"
        )
    elif r.status == "duplicate":
        st.info(f"**{name}**: already in the knowledge base (duplicate), nothing added", icon=":material/info:")
    else:
        st.error(f"**{name}**: failed: {escape_markdown(r.error or 'unknown error')}", icon=":material/error:")


def ingest(files: list[tuple[str, bytes]]) -> list[IngestResult]:
    overall = st.progress(0.0, text=f"0 of {len(files)} files")
    current = st.progress(0.0, text="")
    with st.status(f"Ingesting {len(files)} file(s)…", expanded=True) as status:

        def on_stage(stage: Stage, done: int, total: int) -> None:
            what = f"reading scanned pages by OCR: {done} of {total}" if stage == "ocr" else f"{stage} {done}/{total}"
            current.progress(done / max(total, 1), text=what)

        def on_file(done: int, total: int, result: IngestResult) -> None:
            overall.progress(done / total, text=f"{done} of {total} files")
            show_result(result)

        results = engine.ingest_uploads(files, progress=on_file, file_progress=on_stage)
        failed = sum(r.status == "failed" for r in results)
        status.update(
            label=f"Done: {len(results) - failed} of {len(results)} file(s) in the knowledge base",
            state="error" if failed == len(results) else "complete",
        )
    return results


uploads = (
    st.file_uploader(
        "Add documents",
        # No type filter: the browser's filter refuses a .doc or an .odt silently (its reason is hidden
        # text); the engine refuses them with a reason the page shows ("save it as .docx or PDF",
        # or the list of the types PolicyPal reads).
        type=None,
        accept_multiple_files=True,
        key=f"documents_uploader_{st.session_state.get('documents_upload_round', 0)}",
    )
    if can_edit
    else None
)
if can_edit and st.button("Ingest", type="primary", disabled=not uploads, key="documents_ingest"):
    try:
        st.session_state["documents_last_results"] = ingest([(f.name, f.getvalue()) for f in uploads or []])
    except BatchTooLarge as e:
        st.error(str(e))
    st.session_state["documents_upload_round"] = st.session_state.get("documents_upload_round", 0) + 1
    st.rerun()

for r in st.session_state.get("documents_last_results", []):
    show_result(r)

docs = engine.documents()
st.subheader(f"In the knowledge base ({len(docs)})")
if not docs:
    if not can_edit:
        st.info("No documents yet: an administrator has to add them.")
        st.stop()
    st.info("No documents yet. Upload your own above, or try PolicyPal with a short sample HR policy.")
    if st.button("Load the sample HR policy", key="documents_load_sample"):
        with st.spinner("Ingesting the sample policy…"):
            st.session_state["documents_last_results"] = [engine.load_sample()]
        st.rerun()
    st.stop()

st.dataframe(
    [{"name": d.name, "pages": d.pages, "chunks": d.chunks, "added": d.added_at, "id": d.document_id} for d in docs],
    hide_index=True,
    width="stretch",
)
if not can_edit:
    st.stop()

with st.expander("Delete a document"):
    labels = {d.document_id: f"{d.name} ({d.document_id})" for d in docs}
    choice = st.selectbox("Document", list(labels), format_func=labels.__getitem__, key="documents_delete_choice")
    if st.button("Delete…", key="documents_delete"):
        st.session_state["documents_confirm_delete"] = choice
    pending = st.session_state.get("documents_confirm_delete")
    if pending in labels:
        st.warning(f"Delete **{escape_markdown(labels[pending])}** and its passages? This cannot be undone.")
        yes, no = st.columns(2)
        if yes.button("Yes, delete", type="primary", key="documents_delete_confirm"):
            engine.delete(pending)
            st.session_state.pop("documents_confirm_delete", None)
            st.session_state["documents_last_results"] = []
            st.toast(f"Deleted {escape_markdown(labels[pending])}")  # a toast renders Markdown too
            st.rerun()
        if no.button("Cancel", key="documents_delete_cancel"):
            st.session_state.pop("documents_confirm_delete", None)
            st.rerun()
