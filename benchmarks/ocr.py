"""OCR quality and speed: word accuracy against a known text, and seconds per page, on this machine.

Two kinds of scan:

1. the scanned PDFs of ../shared/corpus/robustness. `scanned-ocr-two-column_...` holds page pictures
   and a text layer some other OCR engine made: its pictures are read by PolicyPal's OCR and compared
   with that layer (itself OCR, so a noisy reference). `image-only-no-text_...` (a drawing) and page 2
   of `encrypted-empty-password-rc4-scanned_...` (a scanned notice) have no reference: the words found
   are reported.
2. a scan made from a real text PDF of ../shared/corpus/hr (its first pages): `pdftoppm -r 200`, each
   page turned by 1 degree with PIL, saved as JPEG quality 70, joined with img2pdf into an image-only
   PDF; read by OCR through `load_bytes` and compared with pypdf's text layer of the original.

Word accuracy = reference words matched in order (difflib.SequenceMatcher over the lower-cased word
lists, punctuation stripped, words hyphenated at a line end joined) / reference words. Reading order
counts there: two columns read across instead of down lose words. "Any order" counts the reference
words found regardless of order (multiset intersection), which isolates recognition. Seconds per
page: the median over pages of render + Tesseract, measured by the loader's progress callback.

    python benchmarks/ocr.py [--shared ../shared] [--source NAME.pdf[:FIRST]]... [--pages 5]
"""

from __future__ import annotations

import argparse
import io
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import img2pdf  # noqa: E402
import pypdf  # noqa: E402
from PIL import Image  # noqa: E402

from rag_core.loaders import load_bytes, normalize_text  # noqa: E402
from rag_core.loaders.ocr import ocr_pages  # noqa: E402

TWO_COLUMN = "scanned-ocr-two-column_seige_of_vicksburg_sample_ocr.pdf"
NO_TEXT = "image-only-no-text_grayscale-image.pdf"
NOTICE = "encrypted-empty-password-rc4-scanned_encrypted_doc_no_id.pdf"
_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")


@dataclass(frozen=True)
class Row:
    scan: str
    reference: str
    pages: int
    reference_words: int
    words_found: int
    accuracy: float | None  # None: no reference
    any_order: float | None
    seconds_per_page: float


def words(text: str) -> list[str]:
    """Lower-case words without punctuation; a word hyphenated at a line end is joined."""
    return _WORD.findall(re.sub(r"-\s*\n\s*", "", text).lower())


def word_accuracy(reference: Sequence[str], found: Sequence[str]) -> float:
    matcher = SequenceMatcher(None, list(reference), list(found), autojunk=False)
    return sum(b.size for b in matcher.get_matching_blocks()) / max(len(reference), 1)


def any_order(reference: Sequence[str], found: Sequence[str]) -> float:
    return sum((Counter(reference) & Counter(found)).values()) / max(len(reference), 1)


def text_layer(data: bytes) -> list[str]:
    reader = pypdf.PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        reader.decrypt("")
    return [normalize_text(p.extract_text() or "") for p in reader.pages]


def timed_ocr(data: bytes, numbers: Sequence[int], languages: str) -> tuple[dict[int, str], list[float]]:
    """OCR of the given pages and the seconds each took."""
    stamps: list[float] = []
    start = time.perf_counter()
    texts = ocr_pages(data, numbers, languages, lambda done, total: stamps.append(time.perf_counter()))
    times = [b - a for a, b in zip([start, *stamps[:-1]], stamps, strict=True)]
    return texts, times


def robustness_rows(robustness: Path, languages: str) -> list[Row]:
    rows: list[Row] = []
    data = (robustness / TWO_COLUMN).read_bytes()
    layer = text_layer(data)
    texts, times = timed_ocr(data, range(1, len(layer) + 1), languages)
    reference = [w for page in layer for w in words(page)]
    found = [w for n in sorted(texts) for w in words(texts[n])]
    rows.append(
        Row(
            TWO_COLUMN,
            "its own OCR text layer",
            len(layer),
            len(reference),
            len(found),
            word_accuracy(reference, found),
            any_order(reference, found),
            statistics.median(times),
        )
    )
    for name, numbers in ((NO_TEXT, [1]), (NOTICE, [2])):
        texts, times = timed_ocr((robustness / name).read_bytes(), numbers, languages)
        found = [w for n in numbers for w in words(texts[n])]
        rows.append(Row(name, "none", len(numbers), 0, len(found), None, None, statistics.median(times)))
    return rows


def make_scan(source: Path, first: int, pages: int, work: Path) -> bytes:
    """An image-only PDF of `pages` pages of the source from `first`, as an office scanner would make it."""
    last = str(first + pages - 1)
    subprocess.run(
        ["pdftoppm", "-r", "200", "-gray", "-f", str(first), "-l", last, "-png", str(source), str(work / "p")],
        check=True,
    )
    jpegs: list[bytes] = []
    for png in sorted(work.glob("p-*.png")):
        with Image.open(png) as picture:
            turned = picture.rotate(1.0, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
        out = io.BytesIO()
        turned.save(out, "JPEG", quality=70, dpi=(200, 200))
        jpegs.append(out.getvalue())
    return bytes(img2pdf.convert(jpegs))


def scan_row(source: Path, first: int, pages: int, languages: str) -> Row:
    original = source.read_bytes()
    reference_pages = text_layer(original)[first - 1 : first - 1 + pages]
    with tempfile.TemporaryDirectory() as tmp:
        scan = make_scan(source, first, pages, Path(tmp))
    stamps: list[float] = []
    start = time.perf_counter()
    loaded = load_bytes(
        scan, "scan.pdf", ocr_languages=languages, progress=lambda d, t: stamps.append(time.perf_counter())
    )
    times = [b - a for a, b in zip([start, *stamps[:-1]], stamps, strict=True)][1:]  # the (0, n) call starts OCR
    by_number = {p.number: p.text for p in loaded.pages}
    reference = [w for page in reference_pages for w in words(page)]
    found = [w for n in range(1, pages + 1) for w in words(by_number.get(n, ""))]
    return Row(
        f"{source.name}, pages {first}-{first + pages - 1}: 200 dpi, 1° turn, JPEG q70",
        "the original's text layer",
        pages,
        len(reference),
        len(found),
        word_accuracy(reference, found),
        any_order(reference, found),
        statistics.median(times),
    )


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| scan | reference | pages | reference words | words read | word accuracy | any order | s/page (median) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        accuracy = "–" if r.accuracy is None else f"{r.accuracy:.1%}"
        unordered = "–" if r.any_order is None else f"{r.any_order:.1%}"
        reference_words = "–" if r.accuracy is None else str(r.reference_words)
        lines.append(
            f"| {r.scan} | {r.reference} | {r.pages} | {reference_words} | {r.words_found} | {accuracy} | "
            f"{unordered} | {r.seconds_per_page:.2f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument(
        "--source", action="append", help="NAME.pdf[:FIRST]: a PDF of corpus/hr to scan from page FIRST (repeatable)"
    )
    parser.add_argument("--pages", type=int, default=5)
    parser.add_argument("--languages", default="eng")
    args = parser.parse_args()
    if shutil.which("tesseract") is None or shutil.which("pdftoppm") is None:
        print("needs tesseract and pdftoppm: apt-get install tesseract-ocr tesseract-ocr-eng poppler-utils")
        return 2
    corpus = args.shared / "corpus"
    rows = robustness_rows(corpus / "robustness", args.languages)
    for spec in args.source or ["contoso-electronics-employee-handbook.pdf"]:
        name, _, first = spec.partition(":")
        rows.append(scan_row(corpus / "hr" / name, int(first or 1), args.pages, args.languages))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
