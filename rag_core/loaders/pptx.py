"""PowerPoint (.pptx): one slide is one page, cited as "slide N"; its text in reading order, the title
first as a "#" heading, tables as pipe rows under their header row, speaker notes last under "## Notes".

What is read: the text of every shape on the slide (placeholders, text boxes, shapes inside groups, at
any depth), in reading order (top to bottom, then left to right: the order the author laid them out,
not the order they were drawn in), tables, and the speaker notes, which often hold the sentences the
bullets only hint at. The title is a "#" heading, so rag_core.structure puts it in the heading path of
every chunk of the slide; bullets of a content placeholder are "- " lines, as a numbered bullet such as
"1. Annual leave" would otherwise read as a heading. What is left out: the footer, date and slide-number
placeholders (running text, not content), charts, images, the slide master's and layout's own text.

Pages: a slide without text (a picture, a section divider with no title) is not a page, but keeps its
number: page numbers are slide numbers, and `page_count` counts every slide.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from rag_core.loaders.errors import (
    MAX_FILE_CHARS,
    MAX_PAGE_CHARS,
    DamagedFile,
    LoadError,
    NoExtractableText,
    TooManyPages,
    TooMuchText,
    too_much_text_message,
)
from rag_core.loaders.normalize import normalize_text
from rag_core.loaders.ooxml import SLIDES_PART, check_unpacked_size, zip_holds
from rag_core.types import SLIDE_LABEL, LoadedFile, Page

if TYPE_CHECKING:  # python-pptx loads only when a presentation arrives, not in every parse worker
    from pptx.shapes.base import BaseShape
    from pptx.slide import Slide
    from pptx.table import Table

SUFFIXES = (".pptx",)
_DAMAGED = "could not be read: damaged PowerPoint file; re-save it in PowerPoint and upload it again"


def is_pptx(data: bytes) -> bool:
    """True when the bytes are a zip holding a PowerPoint presentation part, whatever the file is named.

    >>> is_pptx(b"%PDF-1.7")
    False
    """
    return zip_holds(data, SLIDES_PART)


def load_pptx(data: bytes, *, max_pages: int | None = None) -> LoadedFile:
    """Read a .pptx into one page per slide with text (see the module docstring).

    Raises `DamagedFile` for a zip that is not a readable presentation, `TooMuchText` for a bomb or past
    the text limits, `NoExtractableText` when no slide holds text, `TooManyPages` past `max_pages` slides.
    """
    from pptx import Presentation

    check_unpacked_size(data, SLIDES_PART, _DAMAGED)
    try:
        slides = list(Presentation(io.BytesIO(data)).slides)
        if max_pages is not None and len(slides) > max_pages:
            raise TooManyPages(f"too many slides: {len(slides)}, the limit is {max_pages} (raise RAG_MAX_PAGES)")
        texts = [_slide_text(slide) for slide in slides]
    except (LoadError, MemoryError):
        raise
    except Exception as error:  # python-pptx raises what the broken part provokes: KeyError, XML errors ...
        raise DamagedFile(f"{_DAMAGED} ({type(error).__name__}: {error})") from error
    pages = [Page(i, t, slide_label(i)) for i, t in enumerate(texts, 1) if t]
    if not pages:
        raise NoExtractableText(
            "no text: no slide holds text (only pictures? export the slides as PDF and upload that: "
            "PolicyPal reads pictures of text in a PDF by OCR)"
        )
    total = sum(len(p.text) for p in pages)
    if total > MAX_FILE_CHARS:
        raise TooMuchText(too_much_text_message(total))
    for page in pages:
        if len(page.text) > MAX_PAGE_CHARS:
            raise TooMuchText(f"too much text on {page.label}: {len(page.text):,} characters")
    return LoadedFile(kind="pptx", pages=pages, page_count=len(slides))


def slide_label(number: int) -> str:
    """How a citation names a slide.

    >>> slide_label(4)
    'slide 4'
    """
    return f"{SLIDE_LABEL}{number}"


def _slide_text(slide: Slide) -> str:
    title = slide.shapes.title
    lines: list[str] = []
    if title is not None and (heading := " ".join(title.text_frame.text.split())):
        lines += ["# " + heading, ""]
    others = [s for s in slide.shapes if title is None or s.shape_id != title.shape_id]
    lines += _shapes_lines(others)
    if slide.has_notes_slide:
        frame = slide.notes_slide.notes_text_frame
        notes = [line.strip() for line in (frame.text if frame is not None else "").splitlines()]
        if any(notes):
            lines += ["", "## Notes", *(line for line in notes if line)]
    return normalize_text("\n".join(lines))


def _reading_order(shapes: Iterable[BaseShape]) -> list[BaseShape]:
    """Top to bottom, then left to right; a placeholder placed by its layout has no position of its own."""
    return sorted(shapes, key=lambda s: (s.top or 0, s.left or 0))


def _shapes_lines(shapes: Iterable[BaseShape]) -> list[str]:
    lines: list[str] = []
    for shape in _reading_order(shapes):
        lines += _shape_lines(shape)
    return lines


def _shape_lines(shape: BaseShape) -> list[str]:
    from pptx.enum.shapes import MSO_SHAPE_TYPE, PP_PLACEHOLDER
    from pptx.shapes.graphfrm import GraphicFrame
    from pptx.shapes.group import GroupShape

    if isinstance(shape, GroupShape) or shape.shape_type == MSO_SHAPE_TYPE.GROUP:
        return _shapes_lines(shape.shapes)  # type: ignore[attr-defined]
    if isinstance(shape, GraphicFrame) and shape.has_table:
        return list(_table(shape.table))
    if not shape.has_text_frame:
        return []
    bullets = False
    if shape.is_placeholder:
        kind = shape.placeholder_format.type
        if kind in (PP_PLACEHOLDER.FOOTER, PP_PLACEHOLDER.DATE, PP_PLACEHOLDER.SLIDE_NUMBER):
            return []
        bullets = kind in (PP_PLACEHOLDER.BODY, PP_PLACEHOLDER.OBJECT)
    lines: list[str] = []
    for paragraph in shape.text_frame.paragraphs:  # type: ignore[attr-defined]
        text = " ".join(paragraph.text.split())
        if text:
            lines.append(("- " if bullets else "") + text)
    return [*lines, ""] if lines else []


def _table(table: Table) -> Iterator[str]:
    """A table as pipe rows, the first row marked as the header with a "| --- |" line under it."""
    rows: list[list[str]] = []
    for row in table.rows:
        cells = [" ".join(cell.text.replace("|", "/").split()) for cell in row.cells if not cell.is_spanned]
        if any(cells):
            rows.append(cells)
    if not rows:
        return
    yield ""
    for i, cells in enumerate(rows):
        yield "| " + " | ".join(cells) + " |"
        if i == 0:
            yield "| " + " | ".join("---" for _ in cells) + " |"
    yield ""
