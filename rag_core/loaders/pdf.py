"""PDF, page by page, with pypdf: the only module that imports it.

Each page's text layer is read with pypdf. Pages without one (scans) are read by OCR when it is on
(`ocr_languages` given): `rag_core.loaders.ocr` renders the pages whose layer is empty or negligible and
that hold a picture, and Tesseract reads them; those pages are marked `Page.ocr`. A PDF with no text
even after OCR fails with `NoExtractableText`. pypdf logs a warning for every recoverable quirk it
repairs; those are silenced around our calls only.
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
from rag_core.loaders.ocr import MIN_TEXT_LAYER_CHARS, OcrProgress, check_tesseract, ocr_pages, pages_with_pictures
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


def load_pdf(
    data: bytes,
    *,
    max_pages: int | None = None,
    ocr_languages: str | None = None,
    progress: OcrProgress | None = None,
) -> LoadedFile:
    """The non-empty pages of a PDF. Raises a `LoadError` subclass for every way the file can fail.

    `ocr_languages` ("eng", "eng+deu"; None = no OCR): the Tesseract languages scanned pages are read
    in. `progress` is told (pages done, pages to OCR) as OCR goes, starting with (0, n).
    """
    with quiet("pypdf"):
        pages, page_count, first_error = _text_layer(data, max_pages=max_pages)
    if ocr_languages is not None:
        pages = _with_ocr(data, pages, page_count, ocr_languages, progress)
    pages = [p for p in pages if p.text]
    if not pages:
        if first_error is not None:
            raise DamagedFile(f"could not be read: damaged PDF ({_describe(first_error)})")
        if ocr_languages is None:
            raise NoExtractableText(
                "no extractable text (scanned image?): the PDF has no text layer and OCR is off. Turn it on "
                "(RAG_OCR=1) or run OCR on it first (e.g. ocrmypdf) and upload the result"
            )
        raise NoExtractableText(
            "no extractable text: the PDF has no text layer and OCR found no words on its pages (only "
            "pictures, or blank scans?). Upload a clearer scan, or the document's original file"
        )
    return LoadedFile(kind="pdf", pages=pages, page_count=page_count)


def _with_ocr(
    data: bytes, pages: list[Page], page_count: int, languages: str, progress: OcrProgress | None
) -> list[Page]:
    """`pages` (one per page, "" where the layer is empty) with the scanned ones read by OCR."""
    thin = [p.number for p in pages if len(p.text) < MIN_TEXT_LAYER_CHARS]
    scanned = pages_with_pictures(data, thin) if thin else []
    if not scanned:
        return pages
    check_tesseract(languages)
    if progress is not None:
        progress(0, len(scanned))
    read = ocr_pages(data, scanned, languages, progress)
    total_chars = sum(len(p.text) for p in pages)
    out: list[Page] = []
    for page in pages:
        text = read.get(page.number, "")
        if len(text) > len(page.text):
            total_chars += len(text) - len(page.text)
            if total_chars > MAX_FILE_CHARS:
                raise TooMuchText(too_much_text_message(total_chars))
            page = Page(page.number, text, ocr=True)
        out.append(page)
    return out


def _text_layer(data: bytes, *, max_pages: int | None) -> tuple[list[Page], int, Exception | None]:
    """Every page's text layer (text "" where it has none), the page count, and the first page error
    when no page could be read."""
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
        pages.append(Page(i + 1, normalize_text(raw)))
    if errors and not any(p.text for p in pages):
        return pages, page_count, first_error
    return pages, page_count, None


def _describe(e: BaseException) -> str:
    msg = str(e).strip() or type(e).__name__
    if isinstance(e, PdfReadError | FileNotDecryptedError) or type(e).__module__.startswith("pypdf"):
        return msg[:200]
    return f"{type(e).__name__}: {msg}"[:200]
