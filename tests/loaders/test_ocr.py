"""rag_core.loaders.ocr through `load_bytes`: scanned PDF pages are read by Tesseract and marked, pages
with a text layer keep it, and every way OCR cannot help says what to do (install Tesseract or a
language, turn OCR on) or fails as no text."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytesseract
import pytest

from rag_core.config import Settings
from rag_core.loaders import NoExtractableText, OcrUnavailable, load_bytes
from rag_core.loaders.ocr import check_tesseract

from ..scans import SCANNED_POLICY, needs_tesseract, page_picture, scan_pdf, words


@needs_tesseract
class TestScannedPages:
    def test_scanned_pages_are_read_and_marked(self) -> None:
        loaded = load_bytes(scan_pdf(SCANNED_POLICY), "scan.pdf", ocr_languages="eng")
        assert loaded.kind == "pdf" and loaded.page_count == 2 and loaded.ocr_pages == 2
        assert [p.number for p in loaded.pages] == [1, 2] and all(p.ocr for p in loaded.pages)
        for page, original in zip(loaded.pages, SCANNED_POLICY, strict=True):
            expected = words(original)
            assert len(expected & words(page.text)) >= 0.95 * len(expected), page.text

    def test_progress_counts_pages(self) -> None:
        seen: list[tuple[int, int]] = []
        load_bytes(scan_pdf(SCANNED_POLICY), "scan.pdf", ocr_languages="eng", progress=lambda d, t: seen.append((d, t)))
        assert seen == [(0, 2), (1, 2), (2, 2)]

    def test_text_layer_pages_keep_their_text(self, tmp_path: Path) -> None:
        from fpdf import FPDF

        picture = tmp_path / "scan.png"
        page_picture(SCANNED_POLICY[1]).save(picture)
        pdf = FPDF()
        pdf.add_page()
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(0, 6, "Overtime is paid at one and a half times the hourly rate.")
        pdf.add_page()
        pdf.image(str(picture), x=0, y=0, w=pdf.w)
        loaded = load_bytes(bytes(pdf.output()), "mixed.pdf", ocr_languages="eng")
        first, second = loaded.pages
        assert not first.ocr and first.text.startswith("Overtime is paid")
        assert second.ocr and "bereavement" in second.text.lower() and loaded.ocr_pages == 1

    def test_a_scan_stamped_with_a_page_number_is_still_read(self, tmp_path: Path) -> None:
        from fpdf import FPDF

        picture = tmp_path / "scan.png"
        page_picture(SCANNED_POLICY[0]).save(picture)
        pdf = FPDF()
        pdf.add_page()
        pdf.image(str(picture), x=0, y=0, w=pdf.w)
        pdf.set_font("Helvetica", size=9)
        pdf.text(100, 290, "Page 7")  # a text layer of 6 characters: negligible next to the picture
        (page,) = load_bytes(bytes(pdf.output()), "stamped.pdf", ocr_languages="eng").pages
        assert page.ocr and "sixteen weeks of paid parental leave" in page.text

    def test_blank_scan_still_fails_as_no_text(self) -> None:
        with pytest.raises(NoExtractableText, match="OCR found no words"):
            load_bytes(scan_pdf([""]), "blank.pdf", ocr_languages="eng")

    def test_missing_language_names_its_package(self) -> None:
        with pytest.raises(OcrUnavailable, match=r"apt-get install tesseract-ocr-xyz .*RAG_OCR_LANGUAGES"):
            load_bytes(scan_pdf(SCANNED_POLICY[:1]), "scan.pdf", ocr_languages="eng+xyz")


class TestWithoutOcr:
    def test_ocr_off_fails_as_no_text_and_says_how_to_turn_it_on(self) -> None:
        with pytest.raises(NoExtractableText, match=r"scanned image\?.*RAG_OCR=1"):
            load_bytes(scan_pdf(SCANNED_POLICY[:1]), "scan.pdf")

    def test_missing_tesseract_says_what_to_install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "/nonexistent/tesseract")
        with pytest.raises(OcrUnavailable, match=r"install Tesseract: apt-get install tesseract-ocr tesseract-ocr-eng"):
            load_bytes(scan_pdf(SCANNED_POLICY[:1]), "scan.pdf", ocr_languages="eng")
        with pytest.raises(OcrUnavailable, match="brew install tesseract"):
            check_tesseract("eng")

    def test_a_text_pdf_never_asks_for_tesseract(
        self, monkeypatch: pytest.MonkeyPatch, pdf_maker: Callable[..., Path]
    ) -> None:
        monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "/nonexistent/tesseract")
        blank_and_text = pdf_maker(["", "Sick leave is paid from the first day."]).read_bytes()
        loaded = load_bytes(blank_and_text, "memo.pdf", ocr_languages="eng")  # a blank page holds no picture
        assert [p.number for p in loaded.pages] == [2] and loaded.ocr_pages == 0


class TestSettings:
    def test_languages_and_switch_from_the_environment(self) -> None:
        s = Settings.from_env({"RAG_OCR_LANGUAGES": "eng+deu"})
        assert s.ocr and s.ocr_languages_if_on == "eng+deu"
        assert Settings.from_env({"RAG_OCR": "0"}).ocr_languages_if_on is None

    @pytest.mark.parametrize("bad", ["", "eng deu", "eng;rm", "+eng"])
    def test_bad_languages_are_refused(self, bad: str) -> None:
        with pytest.raises(ValueError, match="Tesseract language codes joined by"):
            Settings(ocr_languages=bad)


def test_scan_helper_writes_an_image_only_pdf() -> None:
    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(scan_pdf(SCANNED_POLICY)))
    assert len(reader.pages) == 2 and all(not (p.extract_text() or "").strip() for p in reader.pages)
