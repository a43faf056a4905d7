"""OCR of scanned PDF pages with Tesseract: the only module that imports pytesseract and pypdfium2.

Why: a scanned policy is a PDF of page pictures with no text layer; without OCR it cannot be searched.
`rag_core.loaders.pdf` reads the text layer and hands this module the pages whose layer is empty or
negligible (fewer than `MIN_TEXT_LAYER_CHARS` characters, e.g. only a stamped page number) and that
hold a picture. Each is rendered at `OCR_DPI` with pdfium (which decodes every image filter scanners
use, JBIG2 and CCITT included), read by Tesseract and normalised like any other text. Pages with a
real text layer keep it: OCR is slower and less exact than text the PDF already holds.

Tesseract is a system program (Debian: `tesseract-ocr` plus one `tesseract-ocr-<lang>` package per
language); when it or a language is missing, a file with scanned pages fails with `OcrUnavailable`,
which says what to install (or to set RAG_OCR=0 to keep only the text layer), rather than being
stored with its scanned pages silently missing. A file that needs no OCR never asks for Tesseract.

What it leaves out: deskewing and layout analysis beyond Tesseract's own, and OCR of pictures inside
Word, PowerPoint or Excel files.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rag_core.loaders.errors import DamagedFile, LoadError
from rag_core.loaders.normalize import normalize_text

if TYPE_CHECKING:
    import pypdfium2 as pdfium

# pytesseract and pypdfium2 are imported where they are used: pytesseract imports pandas when it is
# installed (~1 s), which every process importing the loaders, the server's included, would pay.

# Tesseract reads best at ~300 dpi; higher costs time without gaining words on office scans.
OCR_DPI = 300
# A page is rendered with at most this many pixels (an A3 page at 300 dpi has 17.4M), so a page declared
# poster-sized cannot make the renderer allocate gigabytes: it is read at a lower resolution instead.
MAX_RENDER_PIXELS = 40_000_000
# A page whose text layer has fewer characters than this (a page number, a stamp) is OCR'd when it holds a
# picture; the OCR text replaces the layer only when it is longer.
MIN_TEXT_LAYER_CHARS = 20
# Apt and Homebrew package names, for the messages.
INSTALL_HINT = "apt-get install tesseract-ocr tesseract-ocr-eng (or brew install tesseract)"

# (pages done, pages to OCR) after each page.
OcrProgress = Callable[[int, int], None]
# pdfium is not thread-safe. A parse worker reads one file at a time, but with the time budget off
# (RAG_PARSE_TIMEOUT_S=0) files are read in the server's threads: rendering holds this lock, Tesseract
# (a separate process) does not.
_PDFIUM = threading.Lock()


class OcrUnavailable(LoadError):
    """The file needs OCR but Tesseract, or one of the configured languages, is not installed."""

    kind = "ocr_unavailable"


def check_tesseract(languages: str) -> None:
    """Raise `OcrUnavailable` naming what to install when Tesseract or a language in `languages`
    ("eng", "eng+deu") is missing."""
    import pytesseract

    if shutil.which(str(pytesseract.pytesseract.tesseract_cmd)) is None:
        raise OcrUnavailable(
            "needs OCR (scanned pages without text), but Tesseract is not installed: install Tesseract: "
            f"{INSTALL_HINT}; or set RAG_OCR=0 to read only the text layer"
        )
    try:
        installed = set(pytesseract.get_languages(config=""))
    except (pytesseract.TesseractError, OSError) as e:
        raise OcrUnavailable(f"needs OCR, but Tesseract does not run ({e}): reinstall it: {INSTALL_HINT}") from e
    missing = [lang for lang in languages.split("+") if lang not in installed]
    if missing:
        packages = " ".join(f"tesseract-ocr-{lang}" for lang in missing)
        raise OcrUnavailable(
            f"needs OCR, but the Tesseract language {', '.join(missing)} is not installed: "
            f"apt-get install {packages} (or set RAG_OCR_LANGUAGES to installed ones: "
            f"{'+'.join(sorted(installed - {'osd'})) or 'none'})"
        )


def pages_with_pictures(data: bytes, numbers: Sequence[int]) -> list[int]:
    """Those of the 1-based page `numbers` that hold at least one image: the ones worth OCR."""
    with _PDFIUM:
        document = _open(data)
        try:
            return [n for n in numbers if _has_image(document[n - 1])]
        finally:
            document.close()


def ocr_pages(
    data: bytes, numbers: Sequence[int], languages: str, progress: OcrProgress | None = None
) -> dict[int, str]:
    """The OCR text of each of the 1-based page `numbers`, normalised; a page where Tesseract found
    nothing maps to "". Call `check_tesseract` first."""
    # Tesseract's OpenMP threads fight each other on a small machine: one thread is ~6x faster on 2 cores,
    # and the parse pool already reads files in parallel.
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    import pytesseract

    with _PDFIUM:
        document = _open(data)
    texts: dict[int, str] = {}
    try:
        for done, n in enumerate(numbers, start=1):
            texts[n] = normalize_text(_read_page(pytesseract, document, n, languages))
            if progress is not None:
                progress(done, len(numbers))
    finally:
        with _PDFIUM:
            document.close()
    return texts


def _read_page(pytesseract: Any, document: pdfium.PdfDocument, number: int, languages: str) -> str:
    with _PDFIUM:
        page = document[number - 1]
        try:
            image = page.render(scale=render_scale(*page.get_size()), grayscale=True).to_pil()
        finally:
            page.close()
    try:
        return str(pytesseract.image_to_string(image, lang=languages, config=f"--dpi {OCR_DPI}"))
    except pytesseract.TesseractError as e:
        detail = e.message.strip()[:200]
        raise OcrUnavailable(f"OCR failed ({detail}): check the Tesseract install: {INSTALL_HINT}") from e
    finally:
        image.close()


def render_scale(width_pt: float, height_pt: float) -> float:
    """Pixels per PDF point: OCR_DPI, lowered so that the page stays under MAX_RENDER_PIXELS.

    >>> round(render_scale(612, 792) * 72), round(render_scale(7200, 7200) * 72)
    (300, 63)
    """
    scale = OCR_DPI / 72
    pixels = width_pt * height_pt * scale * scale
    return scale if pixels <= MAX_RENDER_PIXELS else scale * (MAX_RENDER_PIXELS / pixels) ** 0.5


def _open(data: bytes) -> pdfium.PdfDocument:
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as e:
        raise DamagedFile(f"could not be read for OCR: damaged PDF ({e})") from e


def _has_image(page: pdfium.PdfPage) -> bool:
    import pypdfium2.raw as pdfium_c

    try:
        return any(True for _ in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=2))
    finally:
        page.close()
