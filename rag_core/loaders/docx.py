"""Word (.docx): the body in reading order, headings as Markdown lines, lists as "- " lines, tables as
pipe rows under their header row; pages where the file marks them, else heading sections.

What is read: the paragraphs and tables of the document body, interleaved as they stand (a table sits
between the paragraphs around it), the text of content controls, hyperlinks and tracked insertions.
Headings ("Heading 1".."Heading 9", "Title", and styles based on them) become "# ..." lines, which
rag_core.structure reads as the heading path. List paragraphs (numbered or bulleted) become "- " lines:
Word computes list numbers when it lays the page out, and a line such as "1. Annual leave" would read
as a heading. A table becomes Markdown pipe rows, its first row the header, so rag_core.tables reads
each row with its column headers ("| 5 | 25 |" under "| Years of service | Days |").
What is left out: headers and footers (running text, not content), footnotes, comments, deleted text,
field codes, and the duplicate fallback copy Word stores of text boxes.

Pages: a .docx holds no pages, only the marks an author put in: a page break (`w:br w:type="page"`),
"page break before" on a paragraph, and a section break that starts a new page. Those are used.
`w:lastRenderedPageBreak` (where Word last happened to lay out a page) is not: it depends on the
printer and fonts of whoever saved the file last, and is often stale or missing. A file with no such
marks is cut at its top-level headings instead, and each part's label names it ("section 3: Annual
leave"), so a citation says "section", never a page number the document does not have.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rag_core.loaders.errors import (
    MAX_FILE_CHARS,
    MAX_PAGE_CHARS,
    DamagedFile,
    NoExtractableText,
    TooManyPages,
    TooMuchText,
    too_much_text_message,
)
from rag_core.loaders.normalize import normalize_text
from rag_core.loaders.ooxml import MAX_XML_BYTES, WORD_PART, check_unpacked_size, zip_holds
from rag_core.types import SECTION_LABEL, LoadedFile, Page

if TYPE_CHECKING:  # python-docx (and lxml under it) loads only when a Word file arrives: not in PDF workers,
    # whose memory cap it would eat into
    from docx.oxml.xmlchemy import BaseOxmlElement
    from docx.styles.style import ParagraphStyle
    from docx.table import Table
    from docx.text.paragraph import Paragraph

SUFFIXES = (".docx",)

_BODY_PART = WORD_PART
MAX_BODY_XML_BYTES = MAX_XML_BYTES  # past this the file is a zip bomb (see rag_core.loaders.ooxml)
MAX_LABEL_CHARS = 60

_PAGE = "\f"  # a page mark inside the text being built; split on, never kept
_HEADING_STYLE = re.compile(r"^heading\s*([1-9])$", re.IGNORECASE)
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"


def qn(tag: str) -> str:
    """A "w:name" tag in the WordprocessingML namespace, as lxml spells it (python-docx's `qn` for `w:`).

    >>> qn("w:t")
    '{http://schemas.openxmlformats.org/wordprocessingml/2006/main}t'
    """
    return "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}" + tag.removeprefix("w:")


_W_T, _W_TAB, _W_BR, _W_CR = qn("w:t"), qn("w:tab"), qn("w:br"), qn("w:cr")
_W_P, _W_TBL, _W_SDT, _W_SDT_CONTENT = qn("w:p"), qn("w:tbl"), qn("w:sdt"), qn("w:sdtContent")
_W_HYPHEN = qn("w:noBreakHyphen")
_W_TYPE, _W_VAL = qn("w:type"), qn("w:val")


def is_docx(data: bytes) -> bool:
    """True when the bytes are a zip holding a Word body part, whatever the file is named.

    >>> is_docx(b"%PDF-1.7"), is_docx(b"PK\\x03\\x04 not really a zip")
    (False, False)
    """
    return zip_holds(data, _BODY_PART)


@dataclass
class _Block:
    """One line of output text and, for a heading, its level (0 for a title); sections start at headings."""

    text: str
    heading_level: int | None = None


def load_docx(data: bytes, *, max_pages: int | None = None) -> LoadedFile:
    """Read a .docx into pages (see the module docstring for what a page is here).

    Raises `DamagedFile` for a zip that is not a readable Word file, `TooMuchText` for a bomb,
    `NoExtractableText` when the body holds no text, `TooManyPages` past `max_pages`.
    """
    from docx import Document

    _check_body_size(data)
    try:
        document = Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError, SyntaxError) as error:  # lxml's XML errors are SyntaxErrors
        raise DamagedFile(
            f"could not be read: damaged Word file ({error}); re-save it in Word and upload it again"
        ) from error
    blocks = list(_body_blocks(document.element.body, document))
    text = "\n".join(b.text for b in blocks)
    if len(text) > MAX_FILE_CHARS:
        raise TooMuchText(too_much_text_message(len(text)))
    if _PAGE in text:
        raw_pages = text.split(_PAGE)
        pages = [Page(i, t) for i, raw in enumerate(raw_pages, 1) if (t := _clean(raw))]
        page_count = len(raw_pages)
    else:
        pages = _sections(blocks)
        page_count = len(pages)
    if not pages:
        raise NoExtractableText("no text: the Word file's body is empty (text only in headers, footers or images?)")
    if max_pages is not None and page_count > max_pages:
        raise TooManyPages(f"too many pages: {page_count}, the limit is {max_pages} (raise RAG_MAX_PAGES)")
    for page in pages:
        if len(page.text) > MAX_PAGE_CHARS:
            raise TooMuchText(f"too much text on page {page.number}: {len(page.text):,} characters")
    return LoadedFile(kind="docx", pages=pages, page_count=page_count)


def _check_body_size(data: bytes) -> None:
    check_unpacked_size(
        data, _BODY_PART, "could not be read: damaged Word file; re-save it in Word and upload it again"
    )


def _clean(text: str) -> str:
    return normalize_text(re.sub(r"\n{3,}", "\n\n", text))


def _sections(blocks: list[_Block]) -> list[Page]:
    """Cut a file without page marks at its top-level headings; each part is labelled for citations.

    The top level is the smallest heading level the file uses (a file may start at "Heading 2").
    Text before the first such heading is a section of its own; a file without headings is one.
    """
    levels = [b.heading_level for b in blocks if b.heading_level is not None]
    top = min(levels) if levels else None
    parts: list[tuple[str | None, list[str]]] = [(None, [])]
    for block in blocks:
        if top is not None and block.heading_level == top:
            parts.append((block.text.lstrip("#").strip(), []))
        parts[-1][1].append(block.text)
    pages: list[Page] = []
    for title, lines in parts:
        text = _clean("\n".join(lines))
        if not text:
            continue
        number = len(pages) + 1
        if title is None:  # the opening part: named by its title heading, if it has one
            named = next((line.lstrip("#").strip() for line in lines if line.startswith("#")), "")
            title = named or ("the whole document" if top is None else "before the first heading")
        pages.append(Page(number, text, section_label(number, title)))
    return pages


def section_label(number: int, title: str) -> str:
    """How a citation names a heading section of a file without pages.

    >>> section_label(3, "Annual leave")
    'section 3: Annual leave'
    """
    title = " ".join(title.split())
    if len(title) > MAX_LABEL_CHARS:
        title = title[: MAX_LABEL_CHARS - 1].rsplit(" ", 1)[0] + "\u2026"
    return f"{SECTION_LABEL}{number}: {title}"


def _body_blocks(container: BaseOxmlElement, document: object) -> Iterator[_Block]:
    """The blocks of a body (or content control) in document order: paragraphs and tables."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    for child in container.iterchildren():
        if child.tag == _W_P:
            yield from _paragraph(Paragraph(child, document))  # type: ignore[arg-type]
        elif child.tag == _W_TBL:
            yield from _table(Table(child, document))  # type: ignore[arg-type]
        elif child.tag == _W_SDT:
            content = child.find(_W_SDT_CONTENT)
            if content is not None:
                yield from _body_blocks(content, document)


def _paragraph(paragraph: Paragraph) -> Iterator[_Block]:
    p_pr = paragraph._p.pPr
    if p_pr is not None and _on(p_pr.find(qn("w:pageBreakBefore"))):
        yield _Block(_PAGE)
    text = _runs_text(paragraph._p)
    level = _heading_level(paragraph)
    parts = text.split(_PAGE)
    for i, part in enumerate(parts):
        if i:
            yield _Block(_PAGE)
        line = " ".join(part.split()) if level is not None else part.strip()
        if not line:
            continue
        if level is not None:
            # A title is a level-1 Markdown heading but never cuts a section: it names the document.
            yield _Block("#" * max(level, 1) + " " + line, level if level > 0 else None)
        elif _is_list_item(paragraph):
            yield _Block("- " + line)
        else:
            yield _Block(line)
    yield _Block("")  # a blank line between paragraphs, as in Markdown
    if p_pr is not None and (sect := p_pr.find(qn("w:sectPr"))) is not None and _starts_page(sect):
        yield _Block(_PAGE)


def _on(flag: BaseOxmlElement | None) -> bool:
    """A Word on/off property: present means on, unless its value says off."""
    return flag is not None and flag.get(_W_VAL, "true").lower() not in ("0", "false", "off")


def _starts_page(sect_pr: BaseOxmlElement) -> bool:
    kind = sect_pr.find(_W_TYPE)
    return (kind.get(_W_VAL) if kind is not None else "nextPage") in ("nextPage", "evenPage", "oddPage")


def _runs_text(p: BaseOxmlElement) -> str:
    """The paragraph's text with page breaks as `_PAGE`, line breaks as newlines, tabs as spaces; text
    in a text box's fallback copy is skipped (its primary copy is read)."""
    out: list[str] = []
    for element in p.iter(_W_T, _W_TAB, _W_BR, _W_CR, _W_HYPHEN):
        if any(a.tag == _MC_FALLBACK for a in element.iterancestors()):
            continue
        if element.tag == _W_T:
            out.append(element.text or "")
        elif element.tag == _W_TAB:
            out.append(" ")
        elif element.tag == _W_HYPHEN:
            out.append("-")
        elif element.tag == _W_BR and element.get(_W_TYPE) == "page":
            out.append(_PAGE)
        else:
            out.append("\n")
    return "".join(out)


def _heading_level(paragraph: Paragraph) -> int | None:
    """1..9 for a "Heading n" style (or one based on it), 0 for "Title", None for body text."""
    style: ParagraphStyle | None = paragraph.style
    seen = 0
    while style is not None and seen < 10:  # a style may name itself as its base: stop
        name = (style.name or "").strip()
        if m := _HEADING_STYLE.match(name):
            return int(m.group(1))
        if name.lower() == "title":
            return 0
        style = style.base_style
        seen += 1
    return None


def _is_list_item(paragraph: Paragraph) -> bool:
    p_pr = paragraph._p.pPr
    if p_pr is not None and p_pr.find(qn("w:numPr")) is not None:
        return True
    name = paragraph.style.name if paragraph.style is not None else ""
    return (name or "").lower().startswith("list")


def _table(table: Table) -> Iterator[_Block]:
    """A table as pipe rows, the first row marked as the header with a "| --- |" line under it."""
    rows: list[list[str]] = []
    for row in table.rows:
        cells: list[str] = []
        last: object = None
        for cell in row.cells:
            if cell._tc is last:  # a merged cell repeats for each grid column it spans: keep it once
                continue
            last = cell._tc
            cells.append(" ".join(cell.text.replace("|", "/").replace(_PAGE, " ").split()))
        if any(cells):
            rows.append(cells)
    if not rows:
        return
    yield _Block("")
    for i, cells in enumerate(rows):
        yield _Block("| " + " | ".join(cells) + " |")
        if i == 0:
            yield _Block("| " + " | ".join("---" for _ in cells) + " |")
    yield _Block("")
