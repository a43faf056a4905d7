"""rag_core.pipeline: the ingest -> search path with the real bundled model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rag_core.config import Settings
from rag_core.embedding import Embedder
from rag_core.pipeline import BatchTooLarge, Engine, display_name
from rag_core.store import EmbedderMismatch


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
