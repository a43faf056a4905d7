"""File bytes -> a `LoadedFile` of clean text pages. The only package that knows file formats.

What it holds: one module per format family (`pdf`, `docx`, `pptx`, `xlsx`, `html`, `text`), what the
Office formats share (`ooxml`), the text normalisation they all share (`normalize`), and one typed
error per way a file can fail (`errors`), each with a message a person can act on. `load_bytes`
detects the type from the bytes, not the name (a PDF named `notes.txt` is read as a PDF, a Word file
named `.pdf` as Word), and hands the file to its format module. Scanned PDF pages are read by OCR
(`ocr`, with Tesseract) when `load_bytes` is given the OCR languages. What it leaves out: chunking,
storage, OCR of pictures in Office files.

Adding a format (OpenDocument): a sibling module with
  - `SUFFIXES`, the lower-case extensions it reads (they join `SUPPORTED_SUFFIXES`, which the upload
    page and the CLI offer);
  - a check on the bytes (`is_pdf(data)`; a zip-based format looks inside the zip, not at the name);
  - a `load_...(data, *, max_pages) -> LoadedFile` that normalises with `normalize_text`, keeps
    1-based page numbers, respects `MAX_PAGE_CHARS`/`MAX_FILE_CHARS` and raises `errors` classes;
  - a branch in `load_bytes` before the text fallback (text accepts any bytes that are not binary),
    its `FileKind` in `rag_core.types`, and its tests in tests/loaders/.
"""

from __future__ import annotations

from pathlib import Path

from rag_core.loaders.docx import SUFFIXES as _DOCX_SUFFIXES
from rag_core.loaders.docx import is_docx, load_docx
from rag_core.loaders.errors import (
    MAX_FILE_CHARS,
    MAX_PAGE_CHARS,
    DamagedFile,
    EmptyFile,
    FileTooLarge,
    LegacyExcelFile,
    LegacyPowerPointFile,
    LegacyWordFile,
    LoadError,
    NoExtractableText,
    ParseOutOfMemory,
    ParserCrashed,
    ParseTimeout,
    PasswordRequired,
    TooManyPages,
    TooMuchText,
    UnsupportedType,
    out_of_memory_message,
    too_large_message,
    too_much_text_message,
)
from rag_core.loaders.html import SUFFIXES as _HTML_SUFFIXES
from rag_core.loaders.html import is_html, load_html
from rag_core.loaders.normalize import normalize_text
from rag_core.loaders.ocr import OcrProgress, OcrUnavailable
from rag_core.loaders.ooxml import refuse_legacy
from rag_core.loaders.pdf import SUFFIXES as _PDF_SUFFIXES
from rag_core.loaders.pdf import is_pdf, load_pdf
from rag_core.loaders.pptx import SUFFIXES as _PPTX_SUFFIXES
from rag_core.loaders.pptx import is_pptx, load_pptx
from rag_core.loaders.text import SUFFIXES as _TEXT_SUFFIXES
from rag_core.loaders.text import decode_text, is_text, load_text
from rag_core.loaders.xlsx import SUFFIXES as _XLSX_SUFFIXES
from rag_core.loaders.xlsx import is_xlsx, load_xlsx
from rag_core.types import LoadedFile

# Every extension PolicyPal reads, with the dot, lower-case: the upload page's file filter and the CLI help.
SUPPORTED_SUFFIXES: tuple[str, ...] = (
    *_PDF_SUFFIXES,
    *_DOCX_SUFFIXES,
    *_PPTX_SUFFIXES,
    *_XLSX_SUFFIXES,
    *_HTML_SUFFIXES,
    *_TEXT_SUFFIXES,
)


def load_path(
    path: str | Path, *, max_bytes: int | None = None, max_pages: int | None = None, ocr_languages: str | None = None
) -> LoadedFile:
    """Read a file from disk and load it (see `load_bytes`); an oversized file is refused before reading."""
    path = Path(path)
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise FileTooLarge(too_large_message(size, max_bytes))
    data = path.read_bytes()
    return load_bytes(data, path.name, max_bytes=max_bytes, max_pages=max_pages, ocr_languages=ocr_languages)


def load_bytes(
    data: bytes,
    name: str,
    *,
    max_bytes: int | None = None,
    max_pages: int | None = None,
    ocr_languages: str | None = None,
    progress: OcrProgress | None = None,
) -> LoadedFile:
    """Detect the type of `data` and extract its pages. Raises a `LoadError` subclass on failure.

    `ocr_languages` ("eng", "eng+deu"; None = no OCR): scanned PDF pages are read by OCR in these
    Tesseract languages, and `progress` is told (pages done, pages to OCR) as it goes.

    >>> load_bytes(b"Remote work needs approval.", "remote.md").pages
    [Page(number=1, text='Remote work needs approval.', label=None, ocr=False)]
    """
    if len(data) == 0:
        raise EmptyFile("the file is empty (0 bytes): upload the document again")
    if max_bytes is not None and len(data) > max_bytes:
        raise FileTooLarge(too_large_message(len(data), max_bytes))
    suffix = Path(name).suffix.lower()
    if is_pdf(data):
        return load_pdf(data, max_pages=max_pages, ocr_languages=ocr_languages, progress=progress)
    if is_docx(data):
        return load_docx(data, max_pages=max_pages)
    if is_pptx(data):
        return load_pptx(data, max_pages=max_pages)
    if is_xlsx(data):
        return load_xlsx(data, max_pages=max_pages)
    refuse_legacy(data, suffix)  # a legacy .doc/.ppt/.xls or a password-protected Office file: what to do
    if suffix in _PDF_SUFFIXES:
        raise DamagedFile("could not be read: damaged PDF (no %PDF- header; the file is named .pdf but is not a PDF)")
    if suffix in _DOCX_SUFFIXES:
        raise DamagedFile(
            "could not be read: damaged Word file (not a .docx zip with a document body); re-save it in Word"
        )
    if suffix in _PPTX_SUFFIXES:
        raise DamagedFile(
            "could not be read: damaged PowerPoint file (not a .pptx zip with a presentation); re-save it in PowerPoint"
        )
    if suffix in _XLSX_SUFFIXES:
        raise DamagedFile(
            "could not be read: damaged Excel file (not an .xlsx zip with a workbook); re-save it in Excel"
        )
    if is_html(data, suffix):
        return load_html(data)
    if is_text(data, suffix):
        return load_text(data, markdown=suffix in (".md", ".markdown"))
    raise UnsupportedType(
        f"unsupported file type {suffix or '(no extension)'!s}: PolicyPal reads {', '.join(SUPPORTED_SUFFIXES)} files"
    )


__all__ = [
    "MAX_FILE_CHARS",
    "MAX_PAGE_CHARS",
    "SUPPORTED_SUFFIXES",
    "DamagedFile",
    "EmptyFile",
    "FileTooLarge",
    "LegacyExcelFile",
    "LegacyPowerPointFile",
    "LegacyWordFile",
    "LoadError",
    "NoExtractableText",
    "OcrProgress",
    "OcrUnavailable",
    "ParseOutOfMemory",
    "ParseTimeout",
    "ParserCrashed",
    "PasswordRequired",
    "TooManyPages",
    "TooMuchText",
    "UnsupportedType",
    "decode_text",
    "is_docx",
    "is_pdf",
    "is_pptx",
    "is_xlsx",
    "load_bytes",
    "load_path",
    "normalize_text",
    "out_of_memory_message",
    "too_large_message",
    "too_much_text_message",
]
