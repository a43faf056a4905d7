"""Where a passage sits in its document: the title and the heading path in effect at each point.

Why: a chunk cut from the middle of a clause ("Tenth ..... 24", "(c) Conversion of Hours") does not say
what it is about, and a question that names the organisation ("At Comcare, ...") shares nothing with
it but that name. Chunks therefore carry a short context, "title > ARTICLE 18 - ANNUAL VACATIONS >
18.1 Annual Vacation Entitlement", that the embedder and BM25 read together with the chunk's own text;
the user still sees the document's own words and the exact page. The heading path carries across
page breaks, so the rows continued on the next page belong to 18.1 too.

Headings are recognised from the text alone, so they work for every format the loaders produce:
Markdown headings ("## Sick leave"), numbered headings ("18.1 Annual Vacation Entitlement",
"4.2 Sick leave", "ARTICLE 18 - ANNUAL VACATIONS", "Part 3: Leave") and short all-capitals lines.
What it leaves out: PDF outlines and font sizes (the loaders return text only).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from rag_core.types import Page

MAX_HEADING_CHARS = 90
MAX_CONTEXT_CHARS = 240  # about 50 word pieces: the context never crowds the chunk out of the model's 256

_MARKDOWN = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_KEYWORD = re.compile(
    r"^(?:article|section|part|chapter|schedule|appendix|annex|division|clause)\s+"
    r"(?:[0-9]+[A-Za-z]?|[IVXLC]+|[A-Z])\b",
    re.IGNORECASE,
)
_NUMBERED = re.compile(r"^([0-9]{1,3}(?:\.[0-9]{1,3}){0,3})\.?\s+(\S.*)$")
_LETTERS = re.compile(r"[A-Za-z]")


@dataclass(frozen=True)
class Heading:
    page: int
    offset: int  # character offset of the heading line in its page's text
    level: int  # 1 = top
    text: str


def heading_level(line: str) -> tuple[int, str] | None:
    """(level, heading text) when `line` reads as a heading, else None.

    >>> heading_level("## Sick leave"), heading_level("18.1 Annual Vacation Entitlement")
    ((2, 'Sick leave'), (2, '18.1 Annual Vacation Entitlement'))
    >>> heading_level("ARTICLE 18 - ANNUAL VACATIONS"), heading_level("ANNUAL LEAVE")
    ((1, 'ARTICLE 18 - ANNUAL VACATIONS'), (1, 'ANNUAL LEAVE'))
    >>> heading_level("1. Employees shall give two weeks' notice."), heading_level("Tenth ..... 24")
    (None, None)
    """
    line = line.strip()
    if not line or len(line) > MAX_HEADING_CHARS:
        return None
    if m := _MARKDOWN.match(line):
        return len(m.group(1)), m.group(2).strip()
    if line[-1] in ".,;:" or not _LETTERS.search(line):
        return None
    words = line.split()
    if _KEYWORD.match(line) and len(words) <= 14:
        return 1, line
    if m := _NUMBERED.match(line):
        number, rest = m.group(1), m.group(2)
        if len(words) <= 12 and rest[:1].isupper() and not rest.rstrip().endswith(tuple("0123456789")):
            return min(number.count(".") + 1, 4), line
        return None
    letters = [c for c in line if c.isalpha()]
    if 2 <= len(words) <= 10 and len(letters) >= 6 and all(c.isupper() for c in letters):
        return 1, line
    return None


def running_lines(pages: Sequence[Page]) -> set[str]:
    """Lines that repeat on many pages (running headers and footers, digits ignored): never headings.

    A Markdown heading is never one: the loaders that write them (Word, PowerPoint, Excel, HTML) have
    left headers and footers out already, and sheets named "Sheet1".."Sheet3" or "2024".."2026", or
    slides titled alike, must keep their headings.

    >>> pages = [Page(i, f"# Sheet{i}\\nAGREEMENT 2022\\n{topic}\\nPage {i} of 3") for i, topic in enumerate("abc", 1)]
    >>> sorted(running_lines(pages))
    ['AGREEMENT #', 'Page # of #']
    """
    counts: Counter[str] = Counter()
    for page in pages:
        counts.update({_shape(line) for line in page.text.split("\n") if line.strip() and not _MARKDOWN.match(line)})
    floor = max(3, len(pages) // 4)
    return {line for line, n in counts.items() if n >= floor}


def _shape(line: str) -> str:
    return re.sub(r"[0-9]+", "#", " ".join(line.split()))


def running_filter(pages: Sequence[Page]) -> Callable[[str], bool]:
    """A test for running header and footer lines of these pages (see `running_lines`), for readers of
    the text, such as rag_core.tables, that must look past them."""
    running = running_lines(pages)
    return lambda line: _shape(line) in running


def headings(pages: Sequence[Page]) -> Iterator[Heading]:
    """Every heading line of the pages, in reading order; running headers and footers are left out."""
    running = running_lines(pages)
    for page in pages:
        offset = 0
        for line in page.text.split("\n"):
            found = heading_level(line)
            if found is not None and _shape(line) not in running:
                yield Heading(page.number, offset + len(line) - len(line.lstrip()), found[0], found[1])
            offset += len(line) + 1


class HeadingPath:
    """The heading path in effect at any (page, offset) of a document, read in order.

    `at(page, offset)` must be asked with non-decreasing positions (the chunker's order).
    """

    def __init__(self, pages: Sequence[Page]):
        self._headings = list(headings(pages))
        self._next = 0
        self._stack: list[Heading] = []

    def at(self, page: int, offset: int) -> list[str]:
        while self._next < len(self._headings):
            h = self._headings[self._next]
            if (h.page, h.offset) > (page, offset):
                break
            while self._stack and self._stack[-1].level >= h.level:
                self._stack.pop()
            self._stack.append(h)
            self._next += 1
        return [h.text for h in self._stack]


def document_title(name: str, pages: Iterable[Page]) -> str:
    """A short title: the file name as words (the document's first line when the name has none).

    The first line of text is not used otherwise: on the dev set it was a print date, a file number
    or a running header more often than a title, and it made retrieval worse (benchmarks/RESULTS.md).

    >>> document_title("comcare-enterprise-agreement-2016-2019.pdf", [Page(1, "12829516.10 OR040-048")])
    'comcare enterprise agreement 2016 2019'
    """
    stem = name.rsplit(".", 1)[0] if "." in name else name
    words = " ".join(re.split(r"[-_\s.]+", stem)).strip()
    first = ""
    for page in pages:
        for line in page.text.split("\n"):
            if _LETTERS.search(line) and not line.strip().startswith("<!--"):
                first = " ".join(line.replace("#", " ").split())[:MAX_HEADING_CHARS]
                break
        if first:
            break
    return words or first


def context_line(title: str, path: list[str], headers: Sequence[str] = ()) -> str:
    """The context a chunk is embedded and indexed with: title > heading > subheading, capped in length,
    then, for a chunk holding table rows, their column headers on lines of their own (rag_core.tables).

    >>> context_line("bcgeu agreement", ["ARTICLE 18 - ANNUAL VACATIONS"], ["Vacation Years Workdays"])
    'bcgeu agreement > ARTICLE 18 - ANNUAL VACATIONS\\nVacation Years Workdays'
    """
    text = " > ".join([title, *path]) if title else " > ".join(path)
    text = text if len(text) <= MAX_CONTEXT_CHARS else text[: MAX_CONTEXT_CHARS - 1] + "…"
    return "\n".join([text, *headers]) if headers else text


def table_headers(context: str) -> list[str]:
    """The column headers a context line carries (see `context_line`), in order.

    >>> table_headers("handbook > Pay\\nYears Rate"), table_headers("handbook > Pay")
    (['Years Rate'], [])
    """
    return [line for line in context.split("\n")[1:] if line]


# ---------------------------------------------------------------------------- printed page numbers

_PAGE_WORD = re.compile(r"\bpage\s+([0-9]{1,4})(?:\s+of\s+[0-9]{1,4})?\b", re.IGNORECASE)
_BARE_NUMBER = re.compile(r"^[-–—\s]*([0-9]{1,4})[-–—\s]*$")
_EDGE_LINES = 3


def _printed_number(text: str) -> int | None:
    """The page number printed in the first or last lines of a page's text, if there is one."""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    edges = lines[:_EDGE_LINES] + lines[-_EDGE_LINES:]
    for line in edges:
        if len(line) <= 120 and (m := _PAGE_WORD.search(line)):
            return int(m.group(1))
    for line in edges:
        if m := _BARE_NUMBER.match(line):
            return int(m.group(1))
    return None


def page_labels(pages: Sequence[Page]) -> dict[int, str]:
    """Printed page numbers, by PDF page index, where the document prints them.

    Many documents number their pages differently from the file ("Page 45" on PDF page 56). The
    numbers found at the top or bottom of pages vote for one offset between printed and PDF numbers;
    when at least three pages and most of those with a number agree, every page from the first such
    page on gets its label (a page whose footer the extraction lost still gets one), and pages before
    it (cover, contents) get none. No agreement, no labels: a citation then names the PDF page only.

    >>> pages = [Page(1, "Cover")] + [Page(i, f"Text of clause {i}.\\nPage {i - 1} of 9") for i in range(2, 6)]
    >>> page_labels(pages)
    {2: '1', 3: '2', 4: '3', 5: '4'}
    """
    found = {p.number: n for p in pages if (n := _printed_number(p.text)) is not None}
    if len(found) < 3:
        return {}
    offsets = Counter(n - index for index, n in found.items())
    offset, votes = offsets.most_common(1)[0]
    if votes < 3 or votes * 2 <= len(found):
        return {}
    first = min(index for index, n in found.items() if n - index == offset)
    return {p.number: str(p.number + offset) for p in pages if p.number >= first and p.number + offset >= 1}
