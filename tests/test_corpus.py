"""Integration over the shared corpus: the 16 awkward PDFs each get the right status, and a real
handbook answers with the right page. Skipped with a reason when ../shared is absent."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rag_core.config import Settings
from rag_core.embedding import Embedder
from rag_core.engine import Engine

from .conftest import CORPUS, needs_corpus

pytestmark = [needs_corpus, pytest.mark.corpus]

# Scanned pages are read by OCR when Tesseract is installed (CI installs it); without it they fail saying so.
HAS_TESSERACT = shutil.which("tesseract") is not None
NO_TESSERACT = ("failed", "ocr_unavailable", "install Tesseract")

# file prefix -> (status, error kind or None, message fragment or page count)
EXPECTED: dict[str, tuple[str, str | None, str | int | None]] = {
    "acroform-fields": ("added", None, 1),
    "annotations": ("added", None, 1),
    "arabic-rtl": ("added", None, 1),
    "cjk-thai-arabic-cyrillic": ("added", None, 1),
    "damaged-broken-xref": ("added", None, 1),
    "damaged-pages-tree": ("failed", "damaged", "could not be read: damaged PDF"),
    "encrypted-empty-password-aes256": ("added", None, 1),
    # Pages 1 and 3 are blank; page 2 is a scanned patent notice, read by OCR.
    "encrypted-empty-password-rc4-scanned": ("added", None, 3) if HAS_TESSERACT else NO_TESSERACT,
    "encrypted-user-password": ("failed", "password", "needs a password"),
    # A drawing of a boy scout with no words in it: OCR finds none.
    "image-only-no-text": ("failed", "no_text", "OCR found no words") if HAS_TESSERACT else NO_TESSERACT,
    "ligatures-lost-apostrophes": ("added", None, 1),
    "many-pages-117": ("added", None, 117),
    "multi-column": ("added", None, 3),
    "scanned-ocr-two-column": ("added", None, 6),  # scans with an OCR text layer: the layer is kept
    "truncated-derived-60pct": ("failed", "damaged", "could not be read: damaged PDF"),
    "xfa-form-hr-payroll": ("added", None, 1),
}


@pytest.mark.slow
def test_robustness_files_each_get_the_right_status(tmp_path: Path, embedder: Embedder) -> None:
    files = sorted((CORPUS / "robustness").glob("*.pdf"))
    assert len(files) == 16
    engine = Engine(Settings(data_dir=tmp_path / "kb"), embedder=embedder)
    results = {r.file: r for r in engine.ingest_paths(files)}
    for prefix, (status, kind, detail) in EXPECTED.items():
        (name,) = [n for n in results if n.startswith(prefix)]
        r = results[name]
        assert r.status == status, (name, r)
        if status == "failed":
            assert r.error_kind == kind and str(detail) in (r.error or ""), (name, r.error)
        else:
            assert r.pages == detail and r.chunks >= 1, (name, r)
            assert r.ocr_pages == (1 if prefix == "encrypted-empty-password-rc4-scanned" else 0), (name, r)

    # The KB is consistent after the batch: every listed document has all its chunks and vectors.
    docs = engine.documents()
    assert len(docs) == sum(1 for s, _, _ in EXPECTED.values() if s == "added")
    chunks = engine.store.all_chunks()
    assert engine.store.size == len(chunks) == sum(d.chunks for d in docs)
    assert {c.document_id for c in chunks} == {d.document_id for d in docs}
    cjk = engine.search("你好世界", k=3)
    assert any(h.document.startswith("cjk-thai") for h in cjk)
    # Ligatures come out as letters, not presentation forms.
    lig = next(c for c in chunks if c.document.startswith("ligatures"))
    assert "ﬁ" not in lig.text and "misfits" in lig.text
    if HAS_TESSERACT:  # the scanned notice's words are found, and its passages say they were read by OCR
        notice = engine.search("international search report publication", k=3)
        assert any(h.document.startswith("encrypted-empty-password-rc4") and h.ocr for h in notice)


def test_handbook_question_cites_the_right_page(tmp_path: Path, embedder: Embedder) -> None:
    engine = Engine(Settings(data_dir=tmp_path / "kb"), embedder=embedder)
    engine.ingest_paths([CORPUS / "hr" / "contoso-electronics-employee-handbook.pdf"])
    hits = engine.search("How often are performance reviews conducted?", k=3)
    assert hits[0].document == "contoso-electronics-employee-handbook.pdf"
    assert 4 in [h.page for h in hits]


@pytest.mark.slow
def test_vacation_table_row_is_found_and_quoted_with_its_figure(tmp_path: Path, embedder: Embedder) -> None:
    """The BCGEU agreement's vacation table (PDF pages 56-57, leader dots, no header on page 57): "after 10
    years" finds the row "Tenth … 24", and the answer leads with it, quoted whole with its headers."""
    engine = Engine(Settings(data_dir=tmp_path / "kb"), embedder=embedder)
    engine.ingest_paths([CORPUS / "hr" / "bcgeu-19th-main-public-service-agreement-2022-2025.pdf"])
    continued = [c for c in engine.store.all_chunks() if c.page == 57 and "Sixteenth to eighteenth" in c.text]
    assert continued and continued[0].context.endswith("\nVacation Years Workdays")
    answer = engine.answer("How many weeks of vacation does a BCGEU employee get after 10 years?")
    assert {56, 57} & {h.page for h in answer.hits[:5]}
    assert answer.grounded and answer.text.startswith("Vacation Years Workdays: Tenth … 24 [")
