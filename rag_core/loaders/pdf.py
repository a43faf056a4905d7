"""PDF, page by page, with pypdf: the only module that imports it.

A scanned PDF without a text layer is reported as such (`NoExtractableText`), not read: no OCR here.
pypdf logs a warning for every recoverable quirk it repairs; those are silenced around our calls only.
"""

from __future__ import annotations

import io

import pypdf
from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

from rag_core.loaders.errors import (
    MAX_FILE_CHARS,
    MAX_PAGE_CHARS,
    DamagedFile,
    NoExtractableText,
    ParseOutOfMemory,
    PasswordRequired,
    TooManyPages,
    TooMuchText,
    out_of_memory_message,
    too_much_text_message,
)
from rag_core.loaders.normalize import normalize_text
from rag_core.logs import quiet
from rag_core.types import LoadedFile, Page

SUFFIXES = (".pdf",)
# The PDF spec lets the header appear anywhere in the first 1024 bytes (some writers prepend junk).
_PDF_HEADER_WINDOW = 1024


def is_pdf(data: bytes) -> bool:
    """True when the bytes carry a PDF header.

    >>> is_pdf(b"%PDF-1.7 ..."), is_pdf(b"hello")
    (True, False)
    """
    return b"%PDF-" in data[:_PDF_HEADER_WINDOW]


def load_pdf(data: bytes, *, max_pages: int | None = None) -> LoadedFile:
    """The non-empty pages of a PDF. Raises a `LoadError` subclass for every way the file can fail."""
    with quiet("pypdf"):
        return _load_pdf(data, max_pages=max_pages)


def _load_pdf(data: bytes, *, max_pages: int | None) -> LoadedFile:
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
    except Exception as e:  # pypdf raises many types on broken input; all mean "damaged"
        raise DamagedFile(f"could not be read: damaged PDF ({_describe(e)})") from e
    try:
        encrypted = reader.is_encrypted
    except Exception as e:  # a broken /Encrypt entry in the trailer
        raise DamagedFile(f"could not be read: damaged PDF ({_describe(e)})") from e
    if encrypted:
        try:
            opened = reader.decrypt("")
        except DependencyError as e:
            raise DamagedFile(f"could not be read: the PDF's encryption needs the 'cryptography' package ({e})") from e
        except Exception as e:
            raise DamagedFile(f"could not be read: damaged PDF encryption ({_describe(e)})") from e
        if opened == pypdf.PasswordType.NOT_DECRYPTED:
            raise PasswordRequired(
                "needs a password: this PDF is encrypted with a user password. "
                "Remove the password (e.g. print to PDF) and upload it again"
            )
    try:
        page_count = len(reader.pages)
    except FileNotDecryptedError as e:
        raise PasswordRequired(f"needs a password: {e}") from e
    except Exception as e:
        raise DamagedFile(f"could not be read: damaged PDF ({_describe(e)})") from e
    if page_count == 0:
        raise DamagedFile("could not be read: damaged PDF (it has no pages)")
    if max_pages is not None and page_count > max_pages:
        raise TooManyPages(
            f"too many pages: {page_count}, the limit is {max_pages} (raise RAG_MAX_PAGES to allow more)"
        )
    pages: list[Page] = []
    errors = 0
    first_error: Exception | None = None
    total_chars = 0
    for i in range(page_count):
        try:
            raw = reader.pages[i].extract_text() or ""
        except MemoryError as e:  # not "one bad page": the reader itself is out of memory
            raise ParseOutOfMemory(out_of_memory_message()) from e
        except Exception as e:  # one bad page should not sink the document
            errors += 1
            first_error = first_error or e
            continue
        if len(raw) > MAX_PAGE_CHARS:
            raise TooMuchText(
                f"too much text: page {i + 1} yields {len(raw):,} characters, more than any real page holds "
                f"(the limit is {MAX_PAGE_CHARS:,}); the PDF is malformed or built to overload the reader. "
                "Re-save it (e.g. print to PDF) and upload it again"
            )
        total_chars += len(raw)
        if total_chars > MAX_FILE_CHARS:
            raise TooMuchText(too_much_text_message(total_chars))
        text = normalize_text(raw)
        if text:
            pages.append(Page(i + 1, text))
    if not pages:
        if errors and first_error is not None:
            raise DamagedFile(f"could not be read: damaged PDF ({_describe(first_error)})")
        raise NoExtractableText(
            "no extractable text (scanned image?): the PDF has no text layer. Run OCR on it first "
            "(e.g. ocrmypdf) and upload the result"
        )
    return LoadedFile(kind="pdf", pages=pages, page_count=page_count)


def _describe(e: BaseException) -> str:
    msg = str(e).strip() or type(e).__name__
    if isinstance(e, PdfReadError | FileNotDecryptedError) or type(e).__module__.startswith("pypdf"):
        return msg[:200]
    return f"{type(e).__name__}: {msg}"[:200]
