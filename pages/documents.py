"""Documents: upload (several files at once) as a job that survives reloads, its progress and results,
list with versions, restore an older version, delete with confirmation."""

import streamlit as st

from pages.common import get_engine, get_job_queue, is_admin, require_router
from rag_core.display import counted, escape_markdown, friendly_time, ocr_note
from rag_core.ingest import BatchTooLarge
from rag_core.types import IngestResult, Job, Stage

require_router("pages/documents.py")
engine = get_engine()
settings = engine.settings
can_edit = is_admin()  # uploads, the sample and deletes may be restricted to administrators

st.title("Documents")
zone = st.context.timezone  # dates in the reader's own time
if not can_edit:
    st.info(
        "These are the documents PolicyPal answers from. Your HR team adds and updates them.",
        icon=":material/visibility:",
    )
else:
    st.caption(
        "Upload PDF, Word (.docx), PowerPoint (.pptx), Excel (.xlsx), HTML, TXT or Markdown files; scanned "
        f"PDF pages are read by OCR. Each file may be up to {settings.max_file_mb:g} MB and "
        f"{settings.max_pages} pages, {settings.max_files_per_batch} files at a time. The same file uploaded "
        "twice is stored once; a file with the name of a document already here replaces it as its next "
        "version (the older version is kept and can be restored below)."
    )


def show_result(r: IngestResult) -> None:
    name = escape_markdown(r.file)
    if r.status == "added":
        st.success(
            f"**{name}**: added, {counted(r.pages, 'page')}, {counted(r.chunks, 'passage')}{ocr_note(r)}",
            icon=":material/check_circle:",
        )
    elif r.status == "updated":
        st.success(
            f"**{name}**: updated, now version {r.version} ({counted(r.pages, 'page')}, "
            f"{counted(r.chunks, 'passage')}{ocr_note(r)}); the earlier version is kept but no longer answered from",
            icon=":material/published_with_changes:",
        )
    elif r.status == "duplicate":
        st.info(f"**{name}**: already in the knowledge base (duplicate), nothing added", icon=":material/info:")
    else:
        st.error(f"**{name}**: failed: {escape_markdown(r.error or 'unknown error')}", icon=":material/error:")
    if r.warning:
        st.warning(f"**{name}**: {escape_markdown(r.warning)}", icon=":material/content_copy:")


STAGE_WORDS: dict[Stage, str] = {
    "parsing": "reading",
    "ocr": "reading scanned pages by OCR",
    "embedding": "indexing",
    "saving": "saving",
}
RECENT_JOBS = 3


def show_job(job: Job) -> None:
    """One upload: a heading, then one line per file (waiting, a progress bar, then its result). The same
    skeleton in every state, so a redraw replaces each line in place and leaves nothing stale behind."""
    if job.status == "queued":
        state = "waiting to start"
    elif job.status == "running":
        state = f"{job.finished_files} of {len(job.files)} files done"
    else:
        state = f"done, {friendly_time(job.finished_at or job.created_at, zone)}"
    st.markdown(f"**Upload of {len(job.files)} file(s)**: {state}")
    if job.error:
        st.error(f"The upload could not be processed: {escape_markdown(job.error)}", icon=":material/error:")
    for f in job.files:
        if f.result is not None:
            show_result(f.result)
        elif f.status == "running" and f.total and f.stage is not None:
            st.progress(f.done / f.total, text=f"{f.name}: {STAGE_WORDS[f.stage]} {f.done}/{f.total}")
        elif job.status in ("queued", "running"):
            st.caption(f"{f.name}: waiting")
        else:
            st.caption(f"{f.name}: not processed")


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
    try:  # persisted before anything is read: a reload or a closed tab no longer loses it
        get_job_queue().submit([(f.name, f.getvalue()) for f in uploads or []], max_files=settings.max_files_per_batch)
    except BatchTooLarge as e:
        st.session_state["documents_upload_error"] = str(e)
    st.session_state["documents_upload_round"] = st.session_state.get("documents_upload_round", 0) + 1
    st.rerun()
if error := st.session_state.pop("documents_upload_error", None):
    st.error(error)

active = can_edit and any(j.status in ("queued", "running") for j in get_job_queue().jobs(RECENT_JOBS))


# While an upload runs, this part redraws itself every second (the upload's progress, then its results
# and the new documents); the rest of the page stays as it is.
@st.fragment(run_every=1.0 if active else None)
def library() -> None:
    if can_edit:
        for job in get_job_queue().jobs(RECENT_JOBS):  # from any browser: what runs now, and the last results
            with st.container(border=True):
                show_job(job)
    for r in st.session_state.get("documents_last_results", []):
        show_result(r)

    docs = engine.documents()
    st.subheader(f"In the knowledge base ({len(docs)})")
    if not docs:
        if not can_edit:
            st.info("No documents yet: an administrator has to add them.")
            return
        st.info("No documents yet. Upload your own above, or try PolicyPal with a short sample HR policy.")
        if st.button("Load the sample HR policy", key="documents_load_sample"):
            with st.spinner("Ingesting the sample policy…"):
                st.session_state["documents_last_results"] = [engine.load_sample()]
            st.rerun()
        return

    st.dataframe(
        [
            {
                "name": d.name,
                "version": d.version,
                "pages": d.pages,
                **({"passages": d.chunks} if can_edit else {}),
                "added": friendly_time(d.added_at, zone),
                **({"id": d.document_id} if can_edit else {}),
            }
            for d in docs
        ],
        hide_index=True,
        width="stretch",
    )
    if not can_edit:
        return

    older = [d for d in engine.documents(all_versions=True) if not d.current]
    if older:
        with st.expander(f"Older versions ({len(older)})"):
            st.caption("Kept for reference, never answered from. Restoring one makes it the current version again.")
            st.dataframe(
                [
                    {"name": d.name, "version": d.version, "pages": d.pages, "added": friendly_time(d.added_at, zone)}
                    for d in older
                ],
                hide_index=True,
                width="stretch",
            )
            names = {d.document_id: f"{d.name}, version {d.version} ({friendly_time(d.added_at, zone)})" for d in older}
            chosen = st.selectbox("Version", list(names), format_func=names.__getitem__, key="documents_restore_choice")
            if st.button("Restore this version", key="documents_restore"):
                engine.restore(chosen)
                st.session_state["documents_last_results"] = []
                st.toast(f"Restored {escape_markdown(names[chosen])}: it is the current version again")
                st.rerun()

    with st.expander("Delete a document"):
        labels = {d.document_id: f"{d.name} ({d.document_id})" for d in docs}
        choice = st.selectbox("Document", list(labels), format_func=labels.__getitem__, key="documents_delete_choice")
        if st.button("Delete…", key="documents_delete"):
            st.session_state["documents_confirm_delete"] = choice
        pending = st.session_state.get("documents_confirm_delete")
        if pending in labels:
            st.warning(
                f"Delete **{escape_markdown(labels[pending])}**, its passages and its older versions? "
                "This cannot be undone."
            )
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


library()
