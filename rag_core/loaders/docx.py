"""Word (.docx): the body in reading order, headings as Markdown lines, lists as "- " lines, tables as
pipe rows under their header row; pages where the file marks them, else heading sections.

What is read: the paragraphs and tables of the document body, interleaved as they stand (a table sits
between the paragraphs around it), the text of content controls, hyperlinks and tracked insertions.
Headings ("Heading 1".."Heading 9", "Title", and styles based on them) become "# ..." lines, which
rag_core.structure reads as the heading path. List paragraphs become "- " lines, and a numbered one
keeps the number Word shows for it ("- 2. Annual leave", "- b) Carry-over"): the file stores no numbers,
only numbering definitions, so they are computed here as Word does (see `_Numbering`). The "- " stays
in front because a bare "2. Annual leave" reads as a heading to rag_core.structure; the number stays
because people cite it ("step 3", "item b"). A numbered heading keeps its number too ("# 4 Leave").
A table becomes Markdown pipe rows, its first row the header, so rag_core.tables reads each row with
its column headers ("| 5 | 25 |" under "| Years of service | Days |"); a table nested in a cell is read
into that cell's text. What is left out: headers and footers (running text, not content), the table
of contents (Word's copy of the headings with the page numbers of its last layout: it would outrank
the sections it points to), footnotes, comments, deleted text, field codes, and the duplicate fallback
copy Word stores of text boxes.

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
from dataclasses import dataclass, field
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
_TOC_STYLE = re.compile(r"^toc\s*(?:[1-9]|heading)$", re.IGNORECASE)
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
_W_SDT_PR, _W_GALLERY = qn("w:sdtPr"), qn("w:docPartGallery")
_W_TC = qn("w:tc")


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
    blocks = list(_body_blocks(document.element.body, document, _Numbering(document), _Styles()))
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


def _body_blocks(
    container: BaseOxmlElement, document: object, numbering: _Numbering, styles: _Styles
) -> Iterator[_Block]:
    """The blocks of a body (or content control) in document order: paragraphs and tables."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    for child in container.iterchildren():
        if child.tag == _W_P:
            yield from _paragraph(Paragraph(child, document), numbering, styles)  # type: ignore[arg-type]
        elif child.tag == _W_TBL:
            yield from _table(Table(child, document), numbering)  # type: ignore[arg-type]
        elif child.tag == _W_SDT and not _is_toc_control(child):
            content = child.find(_W_SDT_CONTENT)
            if content is not None:
                yield from _body_blocks(content, document, numbering, styles)


def _is_toc_control(sdt: BaseOxmlElement) -> bool:
    """True for the content control Word wraps a table of contents in."""
    properties = sdt.find(_W_SDT_PR)
    gallery = properties.find(".//" + _W_GALLERY) if properties is not None else None
    return gallery is not None and (gallery.get(_W_VAL) or "").lower() == "table of contents"


class _Styles:
    """What a paragraph's style makes it, read once per style: python-docx finds a style by scanning
    every style of the file, and a long document asks thousands of times."""

    def __init__(self) -> None:
        self._facts: dict[str | None, tuple[int | None, bool, bool]] = {}

    def of(self, paragraph: Paragraph) -> tuple[int | None, bool, bool]:
        """(heading level, a table-of-contents line, a "List ..." style) for the paragraph's style."""
        p_pr = paragraph._p.pPr
        key = p_pr.pStyle.val if p_pr is not None and p_pr.pStyle is not None else None
        if key not in self._facts:
            self._facts[key] = (_heading_level(paragraph), _is_toc_entry(paragraph), _is_list_style(paragraph))
        return self._facts[key]


def _paragraph(paragraph: Paragraph, numbering: _Numbering, styles: _Styles) -> Iterator[_Block]:
    p_pr = paragraph._p.pPr
    if p_pr is not None and _on(p_pr.find(qn("w:pageBreakBefore"))):
        yield _Block(_PAGE)
    number = numbering.label(paragraph._p)  # counted even when the paragraph is empty, as Word does
    level, toc, list_style = styles.of(paragraph)
    if not toc:
        text = _runs_text(paragraph._p)
        listed = number is not None or list_style
        parts = text.split(_PAGE)
        for i, part in enumerate(parts):
            if i:
                yield _Block(_PAGE)
            line = " ".join(part.split()) if level is not None else part.strip()
            if not line:
                continue
            if number and i == 0:
                line = f"{number} {line}"
            if level is not None:
                # A title is a level-1 Markdown heading but never cuts a section: it names the document.
                yield _Block("#" * max(level, 1) + " " + line, level if level > 0 else None)
            elif listed:
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


def _style_names(paragraph: Paragraph) -> Iterator[str]:
    """The names of the paragraph's style and the styles it is based on, nearest first."""
    style: ParagraphStyle | None = paragraph.style
    seen = 0
    while style is not None and seen < 10:  # a style may name itself as its base: stop
        yield (style.name or "").strip()
        style = style.base_style
        seen += 1


def _is_toc_entry(paragraph: Paragraph) -> bool:
    """A line of a table of contents outside a content control ("TOC 1".."TOC 9", "TOC Heading")."""
    return any(_TOC_STYLE.match(name) for name in _style_names(paragraph))


def _is_list_style(paragraph: Paragraph) -> bool:
    """A "List ..." style without numbering (a file whose numbering part is missing): still a list item."""
    name = paragraph.style.name if paragraph.style is not None else ""
    return (name or "").lower().startswith("list")


def _table(table: Table, numbering: _Numbering) -> Iterator[_Block]:
    """A table as pipe rows, the first row marked as the header with a "| --- |" line under it."""
    rows: list[list[str]] = []
    for row in table.rows:
        cells: list[str] = []
        last: object = None
        for cell in row.cells:
            if cell._tc is last:  # a merged cell repeats for each grid column it spans: keep it once
                continue
            last = cell._tc
            cells.append(_cell_text(cell._tc, numbering).replace("|", "/"))
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


def _cell_text(tc: BaseOxmlElement, numbering: _Numbering) -> str:
    """A cell's text on one line: its paragraphs in order, those of a table nested in it included, each
    with its list number. Paragraphs inside a paragraph (a text box) are read with that paragraph."""
    parts: list[str] = []
    for p in tc.iter(_W_P):
        if any(a.tag == _W_P for a in _ancestors_within(p, tc)):
            continue
        number = numbering.label(p)
        text = " ".join(_runs_text(p).replace(_PAGE, " ").split())
        if text:
            parts.append(f"{number} {text}" if number else text)
    return " ".join(parts)


def _ancestors_within(element: BaseOxmlElement, top: BaseOxmlElement) -> Iterator[BaseOxmlElement]:
    for ancestor in element.iterancestors():
        if ancestor is top:
            return
        yield ancestor


@dataclass(frozen=True)
class _Level:
    """One level of a numbering definition (`w:lvl`): how its number is written and where it starts."""

    fmt: str  # w:numFmt: decimal, lowerLetter, upperRoman, bullet, none ...
    text: str  # w:lvlText: "%1.", "%1.%2", "(%3)"; a bullet character for a bullet level
    start: int = 1
    legal: bool = False  # w:isLgl: every level's number written in decimal ("1.1", not "I.a")
    style: str | None = None  # w:pStyle: the paragraph style that uses this level


@dataclass
class _List:
    """A numbering instance (`w:num`): the abstract definition it counts in, and its own overrides."""

    abstract: str
    levels: dict[int, _Level]
    restarts: dict[int, int] = field(default_factory=dict)  # w:startOverride by level: restart there once


class _Numbering:
    """The number Word shows in front of each list paragraph, counted in document order.

    Word stores no list numbers, only definitions (numbering.xml): a paragraph names a numbering
    instance and a level (`w:numPr`, on the paragraph or inherited from its style), the instance points
    to an abstract definition that says, per level, the format (decimal, lowerLetter, upperRoman ...),
    the text ("%1.", "%1.%2", "(%3)") and the start. As Word does, counters belong to the abstract
    definition, so two instances of one definition continue one another, unless an instance overrides
    a level's start (which is how Word writes "Restart at 1"); a paragraph at one level restarts the
    levels below it. Word lays this out when it draws the page; this is its arithmetic, for the formats
    policies use. Formats it does not know are written in decimal.
    """

    def __init__(self, document: object) -> None:
        self._lists: dict[str, _List] = {}
        self._styles: dict[str, tuple[str | None, str | None, int | None]] = {}  # id: based on, numId, ilvl
        self._default_style: str | None = None
        self._counters: dict[str, dict[int, int]] = {}
        self._restarted: set[tuple[str, int]] = set()
        try:
            self._read_styles(document.styles.element)  # type: ignore[attr-defined]
            self._read_numbering(document.part.numbering_part.element)  # type: ignore[attr-defined]
        except (KeyError, NotImplementedError, AttributeError, ValueError):  # no numbering part: no numbers
            self._lists = {}

    def _read_styles(self, styles: BaseOxmlElement) -> None:
        for style in styles.iterchildren(qn("w:style")):
            if style.get(_W_TYPE) != "paragraph" or not (style_id := style.get(qn("w:styleId"))):
                continue
            based = style.find(qn("w:basedOn"))
            num_id, ilvl = _num_pr(style.find(qn("w:pPr")))
            self._styles[style_id] = (based.get(_W_VAL) if based is not None else None, num_id, ilvl)
            if style.get(qn("w:default")) in ("1", "true", "on"):
                self._default_style = style_id

    def _read_numbering(self, numbering: BaseOxmlElement) -> None:
        abstracts: dict[str, dict[int, _Level]] = {}
        links: dict[str, str] = {}  # abstract id: the numbering style it takes its levels from
        for abstract in numbering.iterchildren(qn("w:abstractNum")):
            abstract_id = abstract.get(qn("w:abstractNumId")) or ""
            abstracts[abstract_id] = {i: lvl for i, lvl in map(_level, abstract.iterchildren(qn("w:lvl")))}
            if (link := abstract.find(qn("w:numStyleLink"))) is not None:
                links[abstract_id] = link.get(_W_VAL) or ""
        instances: dict[str, str] = {}
        for num in numbering.iterchildren(qn("w:num")):
            ref = num.find(qn("w:abstractNumId"))
            if (num_id := num.get(qn("w:numId"))) and ref is not None:
                instances[num_id] = ref.get(_W_VAL) or ""
        for num in numbering.iterchildren(qn("w:num")):
            num_id = num.get(qn("w:numId")) or ""
            abstract_id = instances.get(num_id, "")
            if abstract_id in links:  # a list style: its levels live in the definition the style points to
                linked = self._style_num(links[abstract_id])[0]
                abstract_id = instances.get(linked or "", abstract_id)
            levels = dict(abstracts.get(abstract_id, {}))
            restarts: dict[int, int] = {}
            for override in num.iterchildren(qn("w:lvlOverride")):
                ilvl = _int(override.get(qn("w:ilvl")), 0)
                if (start := override.find(qn("w:startOverride"))) is not None:
                    restarts[ilvl] = _int(start.get(_W_VAL), 1)
                if (lvl := override.find(qn("w:lvl"))) is not None:
                    levels[ilvl] = _level(lvl)[1]
            self._lists[num_id] = _List(abstract_id, levels, restarts)

    def _style_num(self, style_id: str | None) -> tuple[str | None, int | None]:
        """The numbering a paragraph style gives (numId, ilvl), from the style or the styles it is based on."""
        for _ in range(10):
            if style_id is None or style_id not in self._styles:
                return None, None
            based, num_id, ilvl = self._styles[style_id]
            if num_id is not None or ilvl is not None:
                return num_id, ilvl
            style_id = based
        return None, None

    def label(self, p: BaseOxmlElement) -> str | None:
        """The paragraph's number as Word shows it ("3.", "b)", "2.1"), "" for a bullet, None when the
        paragraph is not in a list. Counts the paragraph: ask once per paragraph, in document order."""
        if not self._lists:
            return None
        p_pr = p.find(qn("w:pPr"))
        style_ref = p_pr.find(qn("w:pStyle")) if p_pr is not None else None
        style_id = style_ref.get(_W_VAL) if style_ref is not None else self._default_style
        num_id, ilvl = _num_pr(p_pr)
        style_num, style_ilvl = self._style_num(style_id)
        num_id = num_id if num_id is not None else style_num
        if num_id is None or num_id == "0" or (instance := self._lists.get(num_id)) is None:
            return None
        if ilvl is None:
            ilvl = style_ilvl
        if ilvl is None:  # a style-numbered paragraph: the level that names its style, else the first
            ilvl = next((i for i, lvl in instance.levels.items() if lvl.style == style_id), 0)
        level = instance.levels.get(ilvl)
        if level is None:
            return ""
        counters = self._counters.setdefault(instance.abstract, {})
        if ilvl in instance.restarts and (num_id, ilvl) not in self._restarted:
            self._restarted.add((num_id, ilvl))
            counters[ilvl] = instance.restarts[ilvl]
        else:
            counters[ilvl] = counters[ilvl] + 1 if ilvl in counters else level.start
        for deeper in [k for k in counters if k > ilvl]:
            del counters[deeper]
        if level.fmt == "bullet":
            return ""

        def number(match: re.Match[str]) -> str:
            k = int(match.group(1)) - 1
            shown = instance.levels.get(k, level)
            value = counters.get(k, shown.start)
            return format_number(value, "decimal" if level.legal and k < ilvl else shown.fmt)

        return re.sub(r"%([1-9])", number, level.text).strip()


def _num_pr(p_pr: BaseOxmlElement | None) -> tuple[str | None, int | None]:
    """(numId, ilvl) of a `w:numPr` in these paragraph properties; either may be absent."""
    num_pr = p_pr.find(qn("w:numPr")) if p_pr is not None else None
    if num_pr is None:
        return None, None
    num_id, ilvl = num_pr.find(qn("w:numId")), num_pr.find(qn("w:ilvl"))
    return (
        num_id.get(_W_VAL) if num_id is not None else None,
        _int(ilvl.get(_W_VAL), 0) if ilvl is not None else None,
    )


def _level(lvl: BaseOxmlElement) -> tuple[int, _Level]:
    def value(tag: str) -> str | None:
        element = lvl.find(qn(tag))
        return element.get(_W_VAL) if element is not None else None

    return _int(lvl.get(qn("w:ilvl")), 0), _Level(
        fmt=value("w:numFmt") or "decimal",
        text=value("w:lvlText") or "",
        start=_int(value("w:start"), 1),
        legal=_on(lvl.find(qn("w:isLgl"))),
        style=value("w:pStyle"),
    )


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


_ROMAN: tuple[tuple[int, str], ...] = (
    (1000, "m"), (900, "cm"), (500, "d"), (400, "cd"), (100, "c"), (90, "xc"), (50, "l"), (40, "xl"), (10, "x"),
    (9, "ix"), (5, "v"), (4, "iv"), (1, "i"),
)  # fmt: skip


def format_number(value: int, fmt: str) -> str:
    """A list counter written in a Word number format; unknown formats are written in decimal.

    >>> [format_number(n, f) for n, f in ((3, "decimal"), (2, "lowerLetter"), (28, "upperLetter"), (4, "lowerRoman"))]
    ['3', 'b', 'BB', 'iv']
    >>> format_number(7, "decimalZero"), format_number(14, "upperRoman"), format_number(2, "ordinal")
    ('07', 'XIV', '2nd')
    """
    if fmt == "none":
        return ""
    if fmt in ("lowerLetter", "upperLetter") and value > 0:
        letter = chr(ord("a") + (value - 1) % 26) * ((value - 1) // 26 + 1)  # Word: z, aa, bb ...
        return letter.upper() if fmt == "upperLetter" else letter
    if fmt in ("lowerRoman", "upperRoman") and 0 < value < 4000:
        out = ""
        for amount, numeral in _ROMAN:
            while value >= amount:
                out, value = out + numeral, value - amount
        return out.upper() if fmt == "upperRoman" else out
    if fmt == "decimalZero":
        return f"{value:02d}"
    if fmt == "ordinal":
        suffix = "th" if 10 <= value % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(value % 10, "th")
        return f"{value}{suffix}"
    return str(value)
