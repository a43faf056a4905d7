"""Every page through Streamlit's AppTest: empty KB, a small KB, upload, chat, analysis, escaping."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from rag_core.config import Settings
from rag_core.embedding import Embedder
from rag_core.engine import Engine

from .scans import SCANNED_POLICY, needs_tesseract, scan_pdf

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    d = tmp_path / "kb"
    monkeypatch.setenv("RAG_DATA_DIR", str(d))
    yield d


def app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.run()
    if page is not None:
        at.switch_page(f"pages/{page}.py")
        at.run()
    assert not at.exception, at.exception
    return at


def plain(markdown: str) -> str:
    """Markdown source with backslash escapes removed: the characters a user sees."""
    return re.sub(r"\\(.)", r"\1", markdown)


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [str(e.value) for e in at.info] + [str(e.value) for e in at.error]
    parts += [str(e.value) for e in at.success] + [str(e.value) for e in at.warning] + [e.value for e in at.title]
    parts += [e.value for e in at.caption]
    return plain("\n".join(parts))


def ingest(data_dir: Path, embedder: Embedder, *paths: Path) -> Engine:
    engine = Engine(Settings(data_dir=data_dir), embedder=embedder)
    engine.ingest_paths(list(paths))
    return engine


class TestEmptyKB:
    @pytest.mark.parametrize("page", ["documents", "chat", "analysis"])
    def test_renders_and_points_to_documents(self, data_dir: Path, page: str) -> None:
        at = app(page)
        assert "No documents yet" in texts(at) or "knowledge base is empty" in texts(at)
        if page == "chat":
            assert len(at.chat_input) == 0  # no chat box that cannot work

    def test_sidebar_has_the_settings(self, data_dir: Path) -> None:
        at = app()
        assert [w.key for w in at.sidebar if getattr(w, "key", None)] == [
            "settings_top_k",
            "settings_metric",
            "settings_mode",
            "settings_generator",
        ]

    def test_sample_policy_loads_in_one_click(self, data_dir: Path, embedder: Embedder) -> None:
        at = app("documents")
        at.button(key="documents_load_sample").click().run()
        assert not at.exception
        assert "northwind-sample-hr-policy.pdf**: added" in texts(at)
        assert at.dataframe[0].value["name"].tolist() == ["northwind-sample-hr-policy.pdf"]


class TestDocuments:
    def test_table_lists_ingested_documents(self, data_dir: Path, embedder: Embedder, policy_pdf: Path) -> None:
        ingest(data_dir, embedder, policy_pdf)
        at = app("documents")
        df = at.dataframe[0].value
        assert df["name"].tolist() == ["policy.pdf"] and df["pages"].tolist() == [3]

    def test_delete_asks_for_confirmation(self, data_dir: Path, embedder: Embedder, policy_pdf: Path) -> None:
        engine = ingest(data_dir, embedder, policy_pdf)
        at = app("documents")
        at.button(key="documents_delete").click().run()
        assert "cannot be undone" in texts(at)
        assert len(engine.documents()) == 1  # nothing deleted yet
        at.button(key="documents_delete_cancel").click().run()
        assert len(engine.documents()) == 1
        at.button(key="documents_delete").click().run()
        at.button(key="documents_delete_confirm").click().run()
        assert not at.exception and engine.documents() == []

    def test_an_upload_is_a_job_any_session_sees_with_its_results(self, data_dir: Path, embedder: Embedder) -> None:
        from rag_core.jobs import LocalJobQueue

        at = app("documents")  # starts this server's worker
        job = LocalJobQueue(data_dir).submit([("remote.txt", b"Remote work needs manager approval. " * 10)])
        deadline = time.monotonic() + TIMEOUT
        while LocalJobQueue(data_dir).get(job.job_id).status != "done" and time.monotonic() < deadline:
            time.sleep(0.2)
        fresh = app("documents")  # another browser, or the same one after a reload
        assert "remote.txt**: added, 1 page, 1 passage" in texts(fresh)
        assert fresh.dataframe[0].value["name"].tolist() == ["remote.txt"]
        del at

    def test_new_version_shown_and_the_old_one_restored(
        self, data_dir: Path, embedder: Embedder, pdf_maker: Callable[..., Path]
    ) -> None:
        v1 = pdf_maker(["Annual leave is 20 days a year."], name="leave.pdf")
        engine = ingest(data_dir, embedder, v1)
        v2 = pdf_maker(["Annual leave is 25 days a year."], name="leave.pdf")
        [result] = engine.ingest_paths([v2])
        at = app("documents")
        df = at.dataframe[0].value
        assert df["name"].tolist() == ["leave.pdf"] and df["version"].tolist() == [2]
        assert re.fullmatch(r"\d{1,2} \w{3} \d{4}, \d\d:\d\d UTC", df["added"].tolist()[0])
        assert any(e.label == "Older versions (1)" for e in at.expander)
        at.button(key="documents_restore").click().run()
        assert not at.exception
        [current] = engine.documents()
        assert current.version == 1 and current.document_id != result.document_id
        assert at.dataframe[0].value["version"].tolist() == [1]


class TestChat:
    def test_answer_with_citation_and_evidence(self, data_dir: Path, embedder: Embedder, policy_pdf: Path) -> None:
        ingest(data_dir, embedder, policy_pdf)
        at = app("chat")
        at.chat_input(key="chat_input").set_value("Can I work from home?").run()
        assert not at.exception
        labels = [plain(e.label) for e in at.expander]
        assert any("policy.pdf · page 2 · similarity" in label for label in labels), labels
        assert any(label == "Prompt sent" for label in labels)
        assert "**home**" in texts(at)  # the question's terms are highlighted in the passage
        assert any("dense rank" in c and "fused rank 1" in c for c in texts(at).splitlines())
        assert "<passage" in at.code[0].value and "Question: Can I work from home?" in at.code[0].value
        assert len(at.get("download_button")) == 2

    def test_history_survives_reruns(self, data_dir: Path, embedder: Embedder, policy_pdf: Path) -> None:
        ingest(data_dir, embedder, policy_pdf)
        at = app("chat")
        at.chat_input(key="chat_input").set_value("vacation days").run()
        at.chat_input(key="chat_input").set_value("meal allowance").run()
        assert [m.name for m in at.chat_message] == ["user", "assistant", "user", "assistant"]

    def test_compare_with_and_without_retrieval(self, data_dir: Path, embedder: Embedder, policy_pdf: Path) -> None:
        ingest(data_dir, embedder, policy_pdf)
        at = app("chat")
        at.toggle(key="chat_compare").set_value(True).run()
        at.chat_input(key="chat_input").set_value("Can I work from home?").run()
        assert not at.exception
        captions = [c.value for c in at.caption]
        assert "With retrieved passages" in captions and "Without retrieval (the generator alone)" in captions
        assert "without retrieved passages it has nothing to say" in texts(at)
        at.run()  # after a rerun the history shows the no-retrieval answer in its own expander
        assert any(plain(e.label) == "Without retrieval" for e in at.expander)

    def test_unavailable_model_falls_back_with_visible_warning(
        self, data_dir: Path, embedder: Embedder, policy_pdf: Path
    ) -> None:
        ingest(data_dir, embedder, policy_pdf)
        at = app("chat")
        # (AppTest's switch_page runs the page without app.py's sidebar, so set the setting's state directly)
        at.session_state["settings_generator"] = "hf:nobody/no-such-model"
        at.chat_input(key="chat_input").set_value("Can I work from home?").run()
        assert not at.exception
        assert any("no-such-model" in plain(str(w.value)) for w in at.warning)
        assert "home" in texts(at)

    def test_follow_up_uses_the_previous_question(self, data_dir: Path, embedder: Embedder) -> None:
        Engine(Settings(data_dir=data_dir), embedder=embedder).load_sample()
        at = app("chat")
        at.chat_input(key="chat_input").set_value("How many days of annual leave do full-time employees get?").run()
        at.chat_input(key="chat_input").set_value("and for part-timers?").run()
        assert not at.exception
        last = [plain(e.label) for e in at.expander if e.label.startswith("\\[1\\]")][-1]
        assert "page 1" in last


class TestAnalysis:
    def test_map_and_query_figures(self, data_dir: Path, embedder: Embedder, policy_pdf: Path) -> None:
        ingest(data_dir, embedder, policy_pdf)
        at = app("analysis")
        charts = at.get("plotly_chart")
        assert len(charts) == 1  # the map; one document -> no heatmap
        at.text_input(key="analysis_query").set_value("remote work").run()
        assert not at.exception
        assert len(at.get("plotly_chart")) == 2  # map with the query star + score bars
        assert "same passages in the same order" in texts(at)
        for colour in ("dense", "bm25"):
            at.radio(key="analysis_colour").set_value(colour).run()
            assert not at.exception
            assert '"showscale":true' in at.get("plotly_chart")[0].proto.spec.replace(" ", "")
        at.selectbox(key="analysis_method").set_value("pca").run()
        assert not at.exception

    def test_employees_questions_on_the_map(
        self, data_dir: Path, embedder: Embedder, policy_pdf: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        engine = ingest(data_dir, embedder, policy_pdf)
        at = app("analysis")
        at.toggle(key="analysis_questions").set_value(True).run()  # nothing asked yet: nothing to draw
        assert not at.exception and "No employees' questions to show yet." in texts(at)
        for question in ("How many days of annual leave?", "Where do I park <b>my bike</b>?"):
            engine.questions.record(engine.answer(question))  # as the chat logs them
        at.run()
        assert not at.exception
        spec = at.get("plotly_chart")[0].proto.spec
        assert '"asked questions"' in spec and '"refused questions"' in spec
        assert "annual leave?" in spec and "<b>my bike" not in spec  # question text in hover, escaped
        assert "2 employees' questions: 1 refused" in texts(at)
        at.toggle(key="analysis_questions").set_value(False).run()
        assert "refused questions" not in at.get("plotly_chart")[0].proto.spec

    def test_after_an_ingest_the_previous_map_is_shown_with_the_new_passages_placed(
        self, data_dir: Path, embedder: Embedder, policy_pdf: Path, pdf_maker: Callable[..., Path]
    ) -> None:
        from rag_core import maps

        engine = ingest(data_dir, embedder, policy_pdf)
        maps.embedding_map(engine.store)  # the map of the first state, cached
        added = engine.ingest_paths([pdf_maker(["Parking permits are issued by facilities."], name="parking.pdf")])
        assert added[0].status == "added"  # (this engine schedules no map: the page finds none ready)
        at = app("analysis")
        assert "new passages placed approximately; the full map is being recomputed" in texts(at)
        assert "placed approximately)" in at.get("plotly_chart")[0].proto.spec
        assert maps.MAP_WORKER.wait_idle(120) and maps.map_is_cached(engine.store)  # the page asked for it
        at.run()
        assert "placed approximately" not in texts(at)


MARKDOWN = MarkdownIt("commonmark")


def assert_renders_as_text(source: str, where: str) -> None:
    """Render Markdown as a browser would get it: no link, image, raw HTML or Streamlit directive."""
    rendered = MARKDOWN.render(source)
    for tag in ("<a ", "<img", "<script", "<b>", "<i>"):
        assert tag not in rendered, (where, source, rendered)
    assert not re.search(r"(?<!\\):[a-z]+(?:\\)?\[", source), (where, source)  # :red[...] directives
    assert not re.search(r"(?<!\\)\$", source), (where, source)  # LaTeX


class TestEscaping:
    HOSTILE = (
        "Click [here](javascript:alert(1)) now. <script>alert('x')</script> <b>bold</b> "
        "![img](http://evil.example/x.png) :red[alarm] $x^2$ policy on remote work."
    )

    def test_document_text_and_names_never_render_as_markup(
        self, data_dir: Path, embedder: Embedder, pdf_maker: Callable[..., Path]
    ) -> None:
        pdf = pdf_maker([self.HOSTILE], name="[evil](javascript:x)<i>.pdf")
        ingest(data_dir, embedder, pdf)
        for page in ("documents", "chat", "analysis"):
            at = app(page)
            if page == "documents":  # the name shows in the table (as data) and in the delete warning
                assert at.dataframe[0].value["name"].tolist() == ["[evil](javascript:x)<i>.pdf"]
                at.button(key="documents_delete").click().run()
            if page == "chat":
                at.chat_input(key="chat_input").set_value("remote work policy").run()
            if page == "analysis":
                at.text_input(key="analysis_query").set_value("remote work").run()
            md = [m.value for m in at.markdown] + [e.label for e in at.expander]
            md += [str(e.value) for e in at.success] + [str(e.value) for e in at.error]
            md += [str(e.value) for e in at.warning]
            if page != "analysis":  # (there it is in the plot hovers, checked below)
                assert any("javascript" in value for value in md), page  # the hostile text is shown...
            for value in md:
                assert_renders_as_text(value, page)  # ...as text
            specs = "".join(chart.proto.spec for chart in at.get("plotly_chart"))
            assert "<script" not in specs and "<b>bold" not in specs and "<i>.pdf" not in specs
            if page == "analysis":
                assert "&lt;script&gt;" in specs and "&lt;i&gt;.pdf" in specs


class TestEvaluate:
    def test_sample_questions_scored_per_mode(self, data_dir: Path, embedder: Embedder) -> None:
        Engine(Settings(data_dir=data_dir), embedder=embedder).load_sample()
        at = app("evaluate")
        at.checkbox(key="evaluate_sample").check().run()
        assert not at.exception
        table = at.dataframe[0].value
        assert table["mode"].tolist() == ["dense", "bm25", "hybrid"]
        assert (table["questions"] == 6).all() and table["hit@5"].max() >= 0.8
        assert len(at.get("plotly_chart")) == 1
        assert not at.warning  # the sample policy is in: nothing to warn about

    def test_sample_questions_warn_when_their_document_is_missing(
        self, data_dir: Path, embedder: Embedder, policy_pdf: Path
    ) -> None:
        ingest(data_dir, embedder, policy_pdf)
        at = app("evaluate")
        at.checkbox(key="evaluate_sample").check().run()
        assert not at.exception
        warning = plain(str(at.warning[0].value))
        assert "northwind-sample-hr-policy.pdf" in warning and "Load the sample HR policy" in warning

    def test_bad_file_shows_what_is_wrong(self, data_dir: Path, embedder: Embedder, policy_pdf: Path) -> None:
        from rag_core.evaluation import QAFormatError, parse_qa

        with pytest.raises(QAFormatError, match="columns question, document, page"):
            parse_qa(b"q,doc\nhello,x\n", "qa.csv")
        items = parse_qa(b"question,document,page\nCan I work from home?,policy.pdf,2;3\nMoon?,,\n", "qa.csv")
        assert [(i.question, i.document, i.pages) for i in items] == [
            ("Can I work from home?", "policy.pdf", [2, 3]),
            ("Moon?", None, []),
        ]


def test_evidence_lists_the_cited_passages_first(tmp_path: Path) -> None:
    """The answer's passages come first in the export (and on the page), each keeping its [n]."""
    from rag_core.conversation import ChatMessage, export_markdown
    from rag_core.types import Citation, Hit

    hits = [Hit(r, 0.9 - r / 10, f"doc{r}.pdf", f"d{r}", r, r, f"text {r}") for r in (1, 2, 3)]
    reply = ChatMessage(
        "assistant",
        "It is so [3], also [1].",
        citations=[Citation(3, "doc3.pdf", 3, 3), Citation(1, "doc1.pdf", 1, 1)],
        hits=hits,
    )
    listed = [line for line in export_markdown([reply]).splitlines() if line.startswith("- [")]
    assert [line[:5] for line in listed] == ["- [3]", "- [1]", "- [2]"]


@needs_tesseract
def test_a_scanned_document_says_it_was_read_by_ocr(tmp_path: Path, data_dir: Path, embedder: Embedder) -> None:
    scan = tmp_path / "parental-leave-scan.pdf"
    scan.write_bytes(scan_pdf(SCANNED_POLICY))
    (result,) = Engine(Settings(data_dir=data_dir), embedder=embedder).ingest_paths([scan])
    at = app("documents")
    at.session_state["documents_last_results"] = [result]  # what the page keeps after an upload
    at.run()
    assert f"**parental-leave-scan.pdf**: added, 2 pages, {result.chunks} passages, 2 pages read by OCR" in texts(at)
    at = app("chat")
    at.chat_input(key="chat_input").set_value("How many weeks of parental leave do parents get?").run()
    labels = [plain(e.label) for e in at.expander]
    assert any(
        label.startswith("[1] parental-leave-scan.pdf · page 1") and label.endswith("text read by OCR from a scan")
        for label in labels
    ), labels
