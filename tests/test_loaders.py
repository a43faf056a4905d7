"""rag_core.loaders: type detection, PDF and text extraction, normalisation, typed errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rag_core import loaders
from rag_core.loaders import (
    DamagedFile,
    EmptyFile,
    FileTooLarge,
    NoExtractableText,
    PasswordRequired,
    TooManyPages,
    UnsupportedType,
    load_bytes,
    load_path,
    normalize_text,
)


class TestNormalize:
    def test_ligatures_become_letters(self) -> None:
        assert normalize_text("the ﬁrst ﬂoor") == "the first floor"

    def test_hyphenated_line_break_is_joined(self) -> None:
        assert normalize_text("employ-\nees may") == "employees may"

    def test_real_hyphen_before_capital_is_kept(self) -> None:
        assert normalize_text("Covid-\n19 and Anti-\nHarassment") == "Covid-\n19 and Anti-\nHarassment"

    def test_whitespace_collapsed_paragraphs_kept(self) -> None:
        assert normalize_text("a   b\t\tc\n\n\n\n d ") == "a b c\n\nd"

    def test_control_characters_removed(self) -> None:
        assert normalize_text("a\x00b\x07c") == "a b c"


class TestPdf:
    def test_pages_are_one_based_and_text_extracted(self, pdf_maker: Callable[..., Path]) -> None:
        path = pdf_maker(["First page about leave.", "Second page about pay."])
        loaded = load_path(path)
        assert loaded.kind == "pdf"
        assert [p.number for p in loaded.pages] == [1, 2]
        assert "leave" in loaded.pages[0].text and "pay" in loaded.pages[1].text

    def test_empty_pages_dropped_but_numbering_kept(self, pdf_maker: Callable[..., Path]) -> None:
        loaded = load_path(pdf_maker(["One.", "", "Three."]))
        assert [p.number for p in loaded.pages] == [1, 3]
        assert loaded.page_count == 3

    def test_detected_by_bytes_not_extension(self, pdf_maker: Callable[..., Path]) -> None:
        data = pdf_maker(["Hidden PDF."]).read_bytes()
        loaded = load_bytes(data, "notes.txt")
        assert loaded.kind == "pdf" and "Hidden PDF" in loaded.pages[0].text

    def test_pdf_name_without_pdf_bytes_is_damaged(self) -> None:
        with pytest.raises(DamagedFile, match="could not be read: damaged PDF"):
            load_bytes(b"just some text", "policy.pdf")

    def test_user_password_reported(self, pdf_maker: Callable[..., Path]) -> None:
        path = pdf_maker(["Secret."], user_password="pw")
        with pytest.raises(PasswordRequired, match="needs a password"):
            load_path(path)

    def test_empty_user_password_opens(self, pdf_maker: Callable[..., Path]) -> None:
        # Owner-password-only PDFs are "encrypted" but open with the empty password.
        path = pdf_maker(["Readable despite encryption."], user_password="")
        assert "Readable" in load_path(path).pages[0].text

    def test_truncated_pdf_is_damaged(self, pdf_maker: Callable[..., Path]) -> None:
        data = pdf_maker(["Some text " * 200, "More text " * 200]).read_bytes()
        with pytest.raises((DamagedFile, NoExtractableText)):
            load_bytes(data[: len(data) // 3], "cut.pdf")

    def test_garbage_after_header_is_damaged(self) -> None:
        with pytest.raises(DamagedFile, match="damaged PDF"):
            load_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 10, "junk.pdf")

    def test_no_text_layer(self, pdf_maker: Callable[..., Path]) -> None:
        with pytest.raises(NoExtractableText, match=r"no extractable text \(scanned image\?\)"):
            load_path(pdf_maker(["", ""]))

    def test_page_limit(self, pdf_maker: Callable[..., Path]) -> None:
        path = pdf_maker(["a", "b", "c"])
        with pytest.raises(TooManyPages, match="3, the limit is 2"):
            load_path(path, max_pages=2)


class TestText:
    def test_utf8_text_is_one_page(self) -> None:
        loaded = load_bytes("Café policy\n\nSecond paragraph".encode(), "p.txt")
        assert loaded.kind == "text"
        assert [(p.number, p.text) for p in loaded.pages] == [(1, "Café policy\n\nSecond paragraph")]

    def test_utf8_bom_and_utf16(self) -> None:
        assert load_bytes("\ufeffHello".encode(), "a.md").pages[0].text == "Hello"
        assert load_bytes("Grüße".encode("utf-16"), "b.txt").pages[0].text == "Grüße"

    def test_cp1252_fallback(self) -> None:
        assert load_bytes("naïve “quotes”".encode("cp1252"), "c.txt").pages[0].text == "naïve “quotes”"

    def test_whitespace_only_text(self) -> None:
        with pytest.raises(NoExtractableText):
            load_bytes(b"  \n\n \t", "blank.txt")


class TestErrors:
    def test_empty_file(self) -> None:
        with pytest.raises(EmptyFile, match="empty"):
            load_bytes(b"", "x.pdf")

    def test_unsupported_type_names_supported_ones(self) -> None:
        with pytest.raises(UnsupportedType, match=r"\.docx.*PDF, \.txt and \.md"):
            load_bytes(b"PK\x03\x04\x00\x00binary", "handbook.docx")

    def test_binary_with_text_extension_unsupported(self) -> None:
        with pytest.raises(UnsupportedType):
            load_bytes(b"\x00\x01\x02binary", "a.txt")

    def test_too_large(self, tmp_path: Path) -> None:
        p = tmp_path / "big.txt"
        p.write_text("x" * 2000)
        with pytest.raises(FileTooLarge, match="RAG_MAX_FILE_MB"):
            load_path(p, max_bytes=1000)

    def test_every_error_has_a_kind(self) -> None:
        kinds = {c.kind for c in loaders.LoadError.__subclasses__()}
        assert len(kinds) == len(loaders.LoadError.__subclasses__())
