"""rag_core.engine: the ingest -> search path with the real bundled model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rag_core.__main__ import main
from rag_core.config import Settings
from rag_core.embedding import Embedder
from rag_core.engine import Engine
from rag_core.ingest import BatchTooLarge, display_name
from rag_core.store import EmbedderMismatch
from rag_core.types import KnowledgeChanged


def _engine(tmp_path: Path, embedder: Embedder, **kw: object) -> Engine:
    return Engine(Settings(data_dir=tmp_path / "kb", **kw), embedder=embedder)  # type: ignore[arg-type]


class TestIngest:
    def test_added_then_duplicate(self, tmp_path: Path, embedder: Embedder, policy_pdf: Path) -> None:
        engine = _engine(tmp_path, embedder)
        first = engine.ingest_paths([policy_pdf])[0]
        assert first.status == "added" and first.pages == 3 and first.chunks >= 3 and first.error is None
        again = engine.ingest_bytes("copy.pdf", policy_pdf.read_bytes())
        assert again.status == "duplicate" and again.document_id == first.document_id
        assert len(engine.documents()) == 1

    def test_batch_with_failures_keeps_going(
        self, tmp_path: Path, embedder: Embedder, policy_pdf: Path, pdf_maker: Callable[..., Path]
    ) -> None:
        locked = pdf_maker(["secret"], name="locked.pdf", user_password="pw")
        empty = tmp_path / "empty.txt"
        empty.write_bytes(b"")
        notes = tmp_path / "notes.md"
        notes.write_text("# Dress code\n\nBusiness casual is expected on weekdays.")
        missing = tmp_path / "missing.pdf"
        results = _engine(tmp_path, embedder).ingest_paths([locked, policy_pdf, empty, missing, notes])
        assert [r.status for r in results] == ["failed", "added", "failed", "failed", "added"]
        assert "needs a password" in (results[0].error or "")
        assert "empty" in (results[2].error or "")
        assert "could not open" in (results[3].error or "")

    def test_progress_reports_stages(self, tmp_path: Path, embedder: Embedder, policy_pdf: Path) -> None:
        stages: list[str] = []
        _engine(tmp_path, embedder).ingest_bytes("p.pdf", policy_pdf.read_bytes(), lambda s, d, t: stages.append(s))
        assert stages[0] == "parsing" and "embedding" in stages and stages[-1] == "saving"

    def test_limits_enforced_by_engine(self, tmp_path: Path, embedder: Embedder, policy_pdf: Path) -> None:
        engine = _engine(tmp_path, embedder, max_files_per_batch=1, max_file_mb=0.001)
        with pytest.raises(BatchTooLarge, match="limit is 1"):
            engine.ingest_paths([policy_pdf, policy_pdf])
        result = engine.ingest_paths([policy_pdf])[0]
        assert result.status == "failed" and "too large" in (result.error or "")

    def test_upload_names_are_display_only(self, tmp_path: Path, embedder: Embedder, policy_pdf: Path) -> None:
        engine = _engine(tmp_path, embedder)
        result = engine.ingest_uploads([("../../etc/passwd\x00.pdf", policy_pdf.read_bytes())])[0]
        assert result.status == "added" and result.file == "passwd.pdf"
        assert not (tmp_path / "etc").exists()

    def test_display_name(self) -> None:
        assert display_name("") == "unnamed"
        assert len(display_name("x" * 1000)) == 255
        assert display_name("Política de permisos.pdf") == "Política de permisos.pdf"


class TestSearch:
    def test_finds_the_right_page(self, tmp_path: Path, embedder: Embedder, policy_pdf: Path) -> None:
        engine = _engine(tmp_path, embedder)
        engine.ingest_paths([policy_pdf])
        hits = engine.search("Can I work from home?", k=3)
        assert hits[0].page == 2 and "home" in hits[0].text and hits[0].document == "policy.pdf"
        assert engine.search(["How many vacation days?", "Are meals reimbursed?"], k=1)[1][0].page == 3

    def test_empty_kb_returns_no_hits(self, tmp_path: Path, embedder: Embedder) -> None:
        engine = _engine(tmp_path, embedder)
        assert engine.search("anything") == []
        assert engine.search(["a", "b"]) == [[], []]

    def test_delete_then_search(self, tmp_path: Path, embedder: Embedder, policy_pdf: Path) -> None:
        engine = _engine(tmp_path, embedder)
        engine.ingest_paths([policy_pdf])
        engine.delete("policy.pdf")
        assert engine.search("vacation") == [] and engine.documents() == []

    def test_explicit_other_embedder_is_refused(self, tmp_path: Path, embedder: Embedder, policy_pdf: Path) -> None:
        _engine(tmp_path, embedder).ingest_paths([policy_pdf])
        with pytest.raises(EmbedderMismatch, match="all-MiniLM-L6-v2.*other-model"):
            Engine(Settings(data_dir=tmp_path / "kb"), embedder_spec="other-model")


class TestChangeEvents:
    """The engine tells subscribers once per published change, after the BM25 index has followed."""

    def test_one_event_per_batch_and_per_delete(
        self, tmp_path: Path, embedder: Embedder, policy_pdf: Path, pdf_maker: Callable[..., Path]
    ) -> None:
        engine = _engine(tmp_path, embedder)
        events: list[KnowledgeChanged] = []
        engine.subscribe(events.append)
        other = pdf_maker(["Parking permits are issued by facilities."], name="other.pdf")
        results = engine.ingest_paths([policy_pdf, other, policy_pdf])
        assert len(events) == 1
        assert events[0].kind == "added" and events[0].generation == engine.store.generation() == 2
        assert set(events[0].document_ids) == {r.document_id for r in results[:2]}
        assert engine.searcher.lexical.search(["parking"], 1)[0]  # BM25 followed before the event
        doc = engine.delete("other.pdf")
        assert events[-1] == KnowledgeChanged("deleted", 3, (doc.document_id,))

    def test_nothing_stored_nothing_told(self, tmp_path: Path, embedder: Embedder, policy_pdf: Path) -> None:
        engine = _engine(tmp_path, embedder)
        engine.ingest_paths([policy_pdf])
        events: list[KnowledgeChanged] = []
        engine.subscribe(events.append)
        assert engine.ingest_paths([policy_pdf])[0].status == "duplicate"
        assert engine.ingest_uploads([("empty.txt", b"")])[0].status == "failed"
        assert events == []

    def test_a_failing_listener_never_fails_the_write(
        self, tmp_path: Path, embedder: Embedder, policy_pdf: Path
    ) -> None:
        engine = _engine(tmp_path, embedder)
        told: list[int] = []

        def broken(event: KnowledgeChanged) -> None:
            raise RuntimeError("listener bug")

        engine.subscribe(broken)
        engine.subscribe(lambda e: told.append(e.generation))
        assert engine.load_sample().status == "added"
        assert told == [1] and engine.search("leave")


class TestDocuments:
    def test_is_empty_and_cli_delete_through_the_engine(
        self, tmp_path: Path, embedder: Embedder, policy_pdf: Path
    ) -> None:
        engine = _engine(tmp_path, embedder)
        assert engine.is_empty()
        engine.ingest_paths([policy_pdf])
        assert not engine.is_empty()
        assert main(["delete", "policy.pdf", "--data-dir", str(tmp_path / "kb")]) == 0
        fresh = _engine(tmp_path, embedder)
        assert fresh.is_empty() and fresh.searcher.lexical.search(["vacation"], 3) == [[]]


class TestPostgres:
    def test_ingest_and_search_with_the_knowledge_base_in_postgresql(
        self, tmp_path: Path, embedder: Embedder, pg_url: str
    ) -> None:
        notes = tmp_path / "remote.txt"
        notes.write_text("Remote work. Employees may work from home two days a week with their manager's approval.")
        engine = Engine(Settings(data_dir=tmp_path / "cache", database_url=pg_url), embedder=embedder)
        assert type(engine.store).__name__ == "PostgresStore"
        assert engine.ingest_paths([notes])[0].status == "added"
        for mode in ("dense", "bm25", "hybrid"):
            hits = engine.search("can I work from home", mode=mode)  # type: ignore[arg-type]
            assert hits and hits[0].document == "remote.txt", mode
        assert engine.store.cache_dir.is_relative_to(tmp_path / "cache")  # BM25 rebuilt there, per generation
        again = Engine(Settings(data_dir=tmp_path / "elsewhere", database_url=pg_url), embedder=embedder)
        assert [d.name for d in again.documents()] == ["remote.txt"]  # another app server sees it
