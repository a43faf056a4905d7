"""rag_core.ingest: the next file of a batch is read by a parse worker while the current one embeds,
and the model loads while the first file is read; results and their order are unchanged. A scan is
read by OCR with progress, counted in the result and marked in the evidence."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rag_core import ingest
from rag_core.config import Settings
from rag_core.display import evidence_label, ocr_note
from rag_core.embedding import Embedder
from rag_core.engine import Engine
from rag_core.ingest import Ingestor
from rag_core.store import LocalStore
from rag_core.types import DocumentInfo

from .scans import SCANNED_POLICY, needs_tesseract, scan_pdf


class TestParseAhead:
    def test_batch_reads_ahead_and_keeps_results_in_order(
        self,
        tmp_path: Path,
        embedder: Embedder,
        policy_pdf: Path,
        pdf_maker: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        threads: list[tuple[str, str]] = []
        real = ingest.parse_file

        def spy(data: bytes, name: str, settings: Settings, *a: Any, **kw: Any) -> Any:
            threads.append((name, threading.current_thread().name))
            return real(data, name, settings, *a, **kw)

        monkeypatch.setattr(ingest, "parse_file", spy)
        second = pdf_maker(["Parking permits are issued by facilities. " * 20], name="parking.pdf")
        broken = tmp_path / "broken.pdf"
        broken.write_bytes(b"%PDF-1.7 not really")
        engine = Engine(Settings(data_dir=tmp_path / "kb"), embedder=embedder)
        paths = [policy_pdf, tmp_path / "missing.pdf", second, broken, policy_pdf]
        results = engine.ingest_paths(paths)
        assert [r.status for r in results] == ["added", "failed", "added", "failed", "duplicate"]
        assert results[1].error_kind == "io" and results[3].error_kind == "damaged"
        by_name = dict(threads)
        assert by_name["policy.pdf"] == threading.current_thread().name  # the first file: nothing to overlap
        assert by_name["parking.pdf"].startswith("policypal-parse-ahead")
        assert by_name["broken.pdf"].startswith("policypal-parse-ahead")

    def test_uploads_read_ahead_too(self, tmp_path: Path, embedder: Embedder, policy_pdf: Path) -> None:
        engine = Engine(Settings(data_dir=tmp_path / "kb"), embedder=embedder)
        data = policy_pdf.read_bytes()
        results = engine.ingest_uploads([("a.pdf", data), ("b.pdf", data), ("c.txt", b"Remote work is allowed.")])
        assert [r.status for r in results] == ["added", "duplicate", "added"]

    def test_model_loads_while_the_first_file_is_read(self, tmp_path: Path, policy_pdf: Path) -> None:
        engine = Engine(Settings(data_dir=tmp_path / "kb", embed_runtime="torch", precision="fp32"))
        assert engine._embedder is None
        assert engine.ingest_paths([policy_pdf])[0].status == "added"
        assert engine._embedder is not None and engine._embedder.runtime == "torch"


class TestIngestor:
    """The Ingestor alone, over a store, without an engine around it."""

    def test_stores_documents_and_tells_its_owner(self, tmp_path: Path, embedder: Embedder, policy_pdf: Path) -> None:
        store = LocalStore(tmp_path / "kb")
        stored: list[DocumentInfo] = []
        asked: list[int] = []

        def model() -> Embedder:
            asked.append(1)
            return embedder

        ingestor = Ingestor(Settings(data_dir=tmp_path / "kb"), store, model, stored.append)
        data = policy_pdf.read_bytes()
        results = ingestor.ingest_uploads([("a.pdf", data), ("notes.md", b"# Parking\n\nPermits are free.")])
        assert [r.status for r in results] == ["added", "added"]
        assert [d.document_id for d in stored] == [r.document_id for r in results]
        assert store.size == sum(r.chunks for r in results) and store.embedder_name == embedder.name
        asked.clear()
        again = ingestor.ingest_uploads([("copy.pdf", data)])
        assert again[0].status == "duplicate" and asked == [] and len(stored) == 2  # no model, no parse

    def test_unreadable_text_fails_with_what_to_do(self, tmp_path: Path, embedder: Embedder) -> None:
        ingestor = Ingestor(Settings(data_dir=tmp_path / "kb"), LocalStore(tmp_path / "kb"), lambda: embedder)
        result = ingestor.ingest_bytes("symbols.txt", ("\ufffd " * 50).encode())
        assert result.status == "failed" and result.error_kind == "no_text" and "OCR" in (result.error or "")

    def test_chunks_are_stored_with_their_context_and_shown_without_it(
        self, tmp_path: Path, embedder: Embedder
    ) -> None:
        handbook = b"# Leave\n\n## Sick leave\n\nYou get ten paid sick days a year.\n\n## Holidays\n\nTwenty days."
        on = Engine(Settings(data_dir=tmp_path / "on"), embedder=embedder)
        on.ingest_uploads([("acme-handbook.md", handbook)])
        rows = {r.text: r.context for r in on.store.all_chunks()}
        assert any(c.startswith("acme handbook > Leave") for c in rows.values())
        hit = on.search("sick days", k=1)[0]
        assert "acme handbook" not in hit.text and "ten paid sick days" in hit.text
        off = Engine(Settings(data_dir=tmp_path / "off", chunk_context=False), embedder=embedder)
        off.ingest_uploads([("acme-handbook.md", handbook)])
        assert {r.context for r in off.store.all_chunks()} == {""}


class TestVersions:
    """The same name with new bytes is the next version; the old bytes again bring the old one back."""

    def test_update_then_the_old_file_again(self, tmp_path: Path, embedder: Embedder) -> None:
        engine = Engine(Settings(data_dir=tmp_path / "kb"), embedder=embedder)
        events: list[str] = []
        engine.subscribe(lambda e: events.append(e.kind))
        v1_text = b"Annual leave is twenty days a year for every employee."
        v2_text = b"Annual leave is twenty-five days a year for every employee."
        [added] = engine.ingest_uploads([("leave.txt", v1_text)])
        [updated] = engine.ingest_uploads([("leave.txt", v2_text)])
        assert (added.status, added.version, added.replaces) == ("added", 1, None)
        assert (updated.status, updated.version, updated.replaces) == ("updated", 2, added.document_id)
        assert [h.document_id for h in engine.search("annual leave days", k=3)] == [updated.document_id]
        [again] = engine.ingest_uploads([("leave.txt", v1_text)])  # the old file once more: restored
        assert (again.status, again.document_id, again.version, again.replaces) == (
            "updated",
            added.document_id,
            1,
            updated.document_id,
        )
        assert [d.document_id for d in engine.documents()] == [added.document_id]
        assert [h.document_id for h in engine.search("annual leave days", k=3)] == [added.document_id]
        [dup] = engine.ingest_uploads([("leave.txt", v1_text)])
        assert dup.status == "duplicate"
        assert events == ["added", "updated", "added"]  # one event per write; restoring v1 is v1 again

    def test_a_renamed_copy_is_added_with_a_warning_naming_the_original(
        self, tmp_path: Path, embedder: Embedder
    ) -> None:
        engine = Engine(Settings(data_dir=tmp_path / "kb"), embedder=embedder)
        text = "\n\n".join(f"Rule {i}: the expense type {i} needs a receipt and approval." for i in range(600))
        engine.ingest_uploads([("expenses.md", text.encode())])
        [copy] = engine.ingest_uploads([("expenses (1).md", (text + "\n\nRule 30: one more.").encode())])
        assert copy.status == "added" and copy.warning is not None
        assert "'expenses.md'" in copy.warning and "upload it under the same name" in copy.warning
        [other] = engine.ingest_uploads([("travel.md", b"Travel needs a purchase order and a budget code.")])
        assert other.warning is None


@needs_tesseract
class TestOcr:
    def test_scan_is_added_with_its_ocr_pages_found_and_marked(self, tmp_path: Path, embedder: Embedder) -> None:
        engine = Engine(Settings(data_dir=tmp_path / "kb"), embedder=embedder)
        stages: list[tuple[str, int, int]] = []
        result = engine.ingest_bytes(
            "parental-leave-scan.pdf",
            scan_pdf(SCANNED_POLICY),
            lambda stage, done, total: stages.append((stage, done, total)),
        )
        assert (result.status, result.pages, result.ocr_pages) == ("added", 2, 2), result
        assert result.to_json()["ocr_pages"] == 2 and ocr_note(result) == ", 2 pages read by OCR"
        assert [s for s in stages if s[0] == "ocr"] == [("ocr", 0, 2), ("ocr", 1, 2), ("ocr", 2, 2)]
        hit = engine.search("How many weeks of parental leave?", k=1)[0]
        assert hit.document == "parental-leave-scan.pdf" and hit.page == 1 and hit.ocr
        assert evidence_label(1, hit).endswith("· text read by OCR from a scan")
        text = engine.ingest_bytes("memo.md", b"# Parking\n\nPermits are free at the front desk.")
        assert text.ocr_pages == 0 and not engine.search("parking permits", k=1)[0].ocr

    def test_a_scan_read_ahead_in_a_batch_reports_its_progress(self, tmp_path: Path, embedder: Embedder) -> None:
        engine = Engine(Settings(data_dir=tmp_path / "kb"), embedder=embedder)
        stages: list[tuple[str, int, int]] = []
        results = engine.ingest_uploads(
            [("memo.md", b"Permits are free."), ("scan.pdf", scan_pdf(SCANNED_POLICY))],
            file_progress=lambda stage, done, total: stages.append((stage, done, total)),
        )
        assert [r.ocr_pages for r in results] == [0, 2]
        assert ("ocr", 2, 2) in stages  # the scan was read while the memo embedded, and its progress still shown

    def test_ocr_off_fails_the_scan_with_what_to_do(self, tmp_path: Path, embedder: Embedder) -> None:
        engine = Engine(Settings(data_dir=tmp_path / "kb", ocr=False), embedder=embedder)
        result = engine.ingest_bytes("scan.pdf", scan_pdf(SCANNED_POLICY))
        assert (result.status, result.error_kind, result.ocr_pages) == ("failed", "no_text", 0)
        assert "RAG_OCR=1" in (result.error or "")
