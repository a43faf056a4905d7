"""rag_core.loaders.pdf: pages, numbering, passwords, damage, limits, and pypdf's warnings kept in scope."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pypdf
import pytest

from rag_core.loaders import (
    DamagedFile,
    NoExtractableText,
    PasswordRequired,
    TooManyPages,
    load_bytes,
    load_path,
)


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


@contextmanager
def _pypdf_records() -> Iterator[list[logging.LogRecord]]:
    """Every record that reaches the `pypdf` logger's handlers while the block runs."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("pypdf")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


class TestPypdfWarnings:
    def test_silenced_while_we_read_and_only_then(self, pdf_maker: Callable[..., Path]) -> None:
        data = pdf_maker(["Some text " * 200, "More text " * 200]).read_bytes()
        cut = data[: len(data) // 3]  # pypdf repairs what it can and warns ("EOF marker not found", ...)
        logger = logging.getLogger("pypdf")
        before = logger.level
        with _pypdf_records() as ours, pytest.raises((DamagedFile, NoExtractableText)):
            load_bytes(cut, "cut.pdf")
        assert [r for r in ours if r.levelno < logging.ERROR] == []
        assert logger.level == before
        # The same file read by pypdf directly, outside our calls, still warns: nothing global was changed.
        with _pypdf_records() as theirs:
            try:
                for page in pypdf.PdfReader(io.BytesIO(cut), strict=False).pages:
                    page.extract_text()
            except Exception:
                pass
        assert any(r.levelno == logging.WARNING for r in theirs)
