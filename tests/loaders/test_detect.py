"""rag_core.loaders: the type comes from the bytes, the name only breaks ties; one list of suffixes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rag_core.loaders import SUPPORTED_SUFFIXES, DamagedFile, UnsupportedType, load_bytes
from tests.loaders.test_docx import docx_bytes
from tests.loaders.test_pptx import pptx_bytes, text_slide
from tests.loaders.test_xlsx import xlsx_bytes


class TestDetect:
    def test_detected_by_bytes_not_extension(self, pdf_maker: Callable[..., Path]) -> None:
        data = pdf_maker(["Hidden PDF."]).read_bytes()
        loaded = load_bytes(data, "notes.txt")
        assert loaded.kind == "pdf" and "Hidden PDF" in loaded.pages[0].text

    def test_pdf_name_without_pdf_bytes_is_damaged(self) -> None:
        with pytest.raises(DamagedFile, match="could not be read: damaged PDF"):
            load_bytes(b"just some text", "policy.pdf")

    def test_unsupported_type_names_supported_ones(self) -> None:
        supported = r"reads \.pdf, \.docx, \.pptx, \.xlsx, \.html, \.htm, \.txt, \.md, \.markdown files"
        with pytest.raises(UnsupportedType, match=r"\.odt.*" + supported):
            load_bytes(b"PK\x03\x04\x00\x00binary", "policy.odt")

    def test_binary_with_text_extension_unsupported(self) -> None:
        with pytest.raises(UnsupportedType):
            load_bytes(b"\x00\x01\x02binary", "a.txt")

    def test_text_without_extension_is_read(self) -> None:
        assert load_bytes(b"Leave is paid.", "README").kind == "txt"


class TestSupportedSuffixes:
    def test_the_list(self) -> None:
        assert SUPPORTED_SUFFIXES == (".pdf", ".docx", ".pptx", ".xlsx", ".html", ".htm", ".txt", ".md", ".markdown")

    @pytest.mark.parametrize("suffix", SUPPORTED_SUFFIXES)
    def test_every_listed_suffix_is_read(self, suffix: str, pdf_maker: Callable[..., Path]) -> None:
        data = b"Leave is paid."
        if suffix == ".pdf":
            data = pdf_maker(["Leave is paid."]).read_bytes()
        elif suffix == ".docx":
            data = docx_bytes(lambda document: document.add_paragraph("Leave is paid."))
        elif suffix == ".pptx":
            data = pptx_bytes(lambda deck: text_slide(deck, "Leave is paid."))
        elif suffix == ".xlsx":
            data = xlsx_bytes(lambda workbook: workbook.active.append(["Leave is paid."]))  # type: ignore[union-attr]
        assert "Leave is paid" in load_bytes(data, "policy" + suffix.upper()).pages[0].text
