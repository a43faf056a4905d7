"""Scanned PDFs for the OCR tests: pages of real text drawn into pictures, saved as an image-only PDF.

Each page is a 200 dpi greyscale picture of the text, set in a TrueType font found on the system
(DejaVu Sans, or what `fc-match` offers), so Tesseract reads it as it would a clean office scan.
Tests that need Tesseract or a font skip with the reason.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None,
    reason="Tesseract is not installed (apt-get install tesseract-ocr tesseract-ocr-eng); CI installs it",
)

SCAN_DPI = 200
_PAGE_PX = (int(8.5 * SCAN_DPI), 11 * SCAN_DPI)  # US letter
_FONT_PATHS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/Library/Fonts/Arial.ttf",
)

SCANNED_POLICY = [
    "Parental Leave Policy. Employees who become parents through birth or adoption may take sixteen "
    "weeks of paid parental leave within the first year. Tell your manager and the people team at least "
    "four weeks before the leave starts. Your role is kept for you while you are away.",
    "Bereavement Leave. After the death of a close family member you may take five days of paid "
    "bereavement leave. Extended unpaid leave can be agreed with your manager in writing.",
]


def font_file() -> Path:
    """A TrueType font to draw text with; skips the test when the system has none."""
    for candidate in _FONT_PATHS:
        if Path(candidate).is_file():
            return Path(candidate)
    if shutil.which("fc-match"):
        found = subprocess.run(
            ["fc-match", "-f", "%{file}", "DejaVuSans"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if found.endswith((".ttf", ".otf")) and Path(found).is_file():
            return Path(found)
    pytest.skip("no TrueType font found to draw a scan with (install fonts-dejavu-core)")


def page_picture(text: str) -> Image.Image:
    """One page: `text` wrapped at ~70 characters in 12 pt type, on white; "" gives a blank page."""
    picture = Image.new("L", _PAGE_PX, 255)
    if text:
        font = ImageFont.truetype(str(font_file()), size=SCAN_DPI * 12 // 72)
        draw = ImageDraw.Draw(picture)
        y = SCAN_DPI  # a one-inch margin
        for line in textwrap.wrap(text, 70):
            draw.text((SCAN_DPI, y), line, font=font, fill=0)
            y += SCAN_DPI * 18 // 72
    return picture


def scan_pdf(pages: Sequence[str]) -> bytes:
    """An image-only PDF, one picture per page and no text layer, as a scanner writes it."""
    pictures = [page_picture(text) for text in pages]
    out = io.BytesIO()
    pictures[0].save(out, "PDF", resolution=float(SCAN_DPI), save_all=True, append_images=pictures[1:])
    return out.getvalue()


def words(text: str) -> set[str]:
    """Lower-case words, punctuation stripped."""
    return {w.strip(".,;:()").lower() for w in text.split()} - {""}
