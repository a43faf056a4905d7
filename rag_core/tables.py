"""Tables in extracted text: which lines are rows, and the column headers each row is read with.

Why: the loaders return text only, so a table arrives as lines such as "Vacation Years Workdays",
"Tenth … 24" (leader dots, made "…" by rag_core.loaders.normalize), "In year 15 6.16 160" (columns
separated by spaces) or "| £500 | Apprentices | £250 |" (Markdown and HTML cells). Without help, a
chunk could end inside such a run of lines, the rows would read as bare fragments ("Tenth … 24" says
nothing about vacations), and the answerer would drop them as headings. Here each row is found so that:

- the chunker never cuts a row in two (each row is a piece of its own, rag_core.chunking);
- a chunk holding rows is indexed with their column headers (its context), also when the table goes on
  past a page break without repeating them, so "tenth year vacation workdays 24" finds "Tenth … 24";
- the extractive answerer can quote a row whole, with its headers, instead of a fragment.

A run of rows is a table: at least two leader-dot or cell-separated rows, or three rows ending in figures
(one figure per column). Its header is the few lines just above the first row that are neither
sentences, headings nor rows (a caption such as "EC-01 - Annual Rates of Pay" joins them), or, for a
table at the top of a page that carries on the last table of the page before, that table's header.
What it leaves out: column positions (the loaders collapse spaces, so headers are kept as one string,
never split into cells) and tables drawn as images.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from rag_core.structure import heading_level
from rag_core.types import Page

Style = Literal["leader", "cells", "pipes"]

LEADER = "\u2026"
MAX_HEADER_CHARS = 160  # about 35 word pieces: with the title and headings, still far from the model's 256
MAX_HEADER_LINES = 12  # a header wrapped cell by cell ("3.0% pay rise from / commencement / ...")
MAX_LABEL_CHARS = 60  # a row's text before its figures; longer lines are wrapped prose
MAX_LEADER_VALUE_CHARS = 40

_CELL = re.compile(r"[$£€]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?%?")
_CURRENCY = frozenset("$£€")
# Leader dots: "…" as rag_core.loaders.normalize writes them, or dots as other text has them.
_LEADERS = re.compile(r"(?:^|\s)\u2026(?:\s|$)|\.{4,}")
_PIPE_SEPARATOR = re.compile(r"^\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*\|?$")
_SENTENCE_END = tuple(".;:!?")


@dataclass(frozen=True)
class Table:
    """One run of rows in one page's text: row spans (start, end offsets) and the header read with them."""

    style: Style
    rows: list[tuple[int, int]]
    header: str = ""
    header_start: int | None = None  # offset of the header's first line on this page; None = none here
    lines_above: bool = False  # content (not running lines) stands above the table on its page
    lines_below: bool = False  # content stands below it on its page
    other_lines: list[tuple[int, int]] = field(default_factory=list)  # its header row, "|---|" lines: kept whole


def cells(line: str) -> int:
    """How many figures end the line ("$ 44,936 $ 45,835" counts 2); 0 when it ends in a word.

    >>> cells("APS5.2 $ 74,449 $ 75,938 $ 76,698"), cells("In year 15 6.16 160"), cells("27.1.2.")
    (3, 3, 0)
    """
    tokens = line.split()
    n = 0
    i = len(tokens) - 1
    while i >= 0:
        if _CELL.fullmatch(tokens[i]):
            n += 1
            i -= 1
            if i >= 0 and tokens[i] in _CURRENCY:
                i -= 1
        else:
            break
    return n


def _label(line: str, n: int) -> str:
    """The line without its last n figures (and their currency signs)."""
    tokens = line.split()
    i = len(tokens)
    for _ in range(n):
        i -= 1
        if i > 0 and tokens[i - 1] in _CURRENCY:
            i -= 1
    return " ".join(tokens[:i])


# A line that ends in a printed page number ("... Page 46", "page 3 of 10") is a running header or
# footer, even where the page's running lines could not be told apart (a chunk read on its own).
_PRINTED_PAGE = re.compile(r"\bpage\s+[0-9]{1,4}(?:\s+of\s+[0-9]{1,4})?\s*$", re.IGNORECASE)


def row_style(line: str) -> Style | None:
    """The kind of table row a line reads as, or None for any other line.

    >>> row_style("Tenth … 24"), row_style("In year 15 6.16 160"), row_style("| £500 | Apprentices |")
    ('leader', 'cells', 'pipes')
    >>> row_style("Tenth ..... 24")
    'leader'
    >>> row_style("for an absence of ten (10) consecutive working days, an employee with 10"), row_style("27.1.2.")
    (None, None)
    >>> row_style("BCGEU and Gov't of BC & BCPSA (03/2025) Page 46")  # a running footer, not a row
    """
    line = line.strip()
    if not line or _PIPE_SEPARATOR.match(line) or _PRINTED_PAGE.search(line):
        return None
    if line.startswith("|") or line.count(" | ") >= 1:
        return "pipes"
    if leader := _LEADERS.search(line):
        label, value = line[: leader.start()].strip(), line[leader.end() :].strip()
        if label and value and len(value) <= MAX_LEADER_VALUE_CHARS:
            return "leader"
        return None
    n = cells(line)
    if n and len(_label(line, n)) <= MAX_LABEL_CHARS and not line.endswith("."):
        return "cells"
    return None


@dataclass
class _Line:
    start: int
    end: int
    text: str
    style: Style | None
    is_running: Callable[[str], bool]
    joins_next: bool = False  # the first line of a row wrapped onto the next line
    _running: bool | None = None

    @property
    def running(self) -> bool:
        """A running header or footer line (asked only of the lines that matter: the test is not free)."""
        if self._running is None:
            self._running = bool(self.text) and self.is_running(self.text)
        return self._running


def _lines(text: str, running: Callable[[str], bool]) -> list[_Line]:
    out: list[_Line] = []
    pos = 0
    for raw in text.split("\n"):
        stripped = raw.strip()
        start = pos + len(raw) - len(raw.lstrip())
        line = _Line(start, start + len(stripped), stripped, row_style(stripped), running)
        if line.style is not None and line.running:
            line.style = None
        out.append(line)
        pos += len(raw) + 1
    return out


def _min_rows(style: Style) -> int:
    return 3 if style == "cells" else 2


def _is_header_line(line: _Line) -> bool:
    """A line that may belong to a header: content, not a row, not a sentence's end, not a heading (a
    short line of capitals such as "HIRE DATE PERCENT" may be either, and is taken)."""
    if not line.text or line.running or line.style is not None:
        return False
    if line.text.endswith(_SENTENCE_END) or _PIPE_SEPARATOR.match(line.text):
        return False
    if heading_level(line.text) is None:
        return True
    return len(line.text.split()) <= 4 and not line.text.startswith("#") and not any(c.isdigit() for c in line.text)


def _runs(lines: list[_Line], min_rows: int | None = None) -> list[tuple[int, int]]:
    """(first, last + 1) line indices of runs of rows of one style, long enough to be tables.

    A run goes on over one blank line when rows of its style follow (groups of a wage grid), and a leader
    run over one line without leader dots between two rows: a row wrapped onto two lines, whose first
    line then joins the row after it.
    """
    runs: list[tuple[int, int]] = []
    i = 0
    while i < len(lines):
        style = lines[i].style
        if style is None:
            i += 1
            continue
        j = i + 1
        while j < len(lines):
            if lines[j].style == style or (style == "pipes" and _PIPE_SEPARATOR.match(lines[j].text)):
                j += 1
            elif j + 1 < len(lines) and lines[j + 1].style == style and _bridges(lines[j], style):
                lines[j].joins_next = bool(lines[j].text)
                j += 2
            else:
                break
        runs.extend(_split_cells(lines, i, j) if style == "cells" else [(i, j)])
        i = j
    return [(a, b) for a, b in runs if _row_count(lines, a, b) >= (min_rows or _min_rows(lines[a].style or "cells"))]


def _bridges(line: _Line, style: Style) -> bool:
    """A line between two rows of a style that does not end their run: a blank line (not in a pipe
    table), or the first line of a wrapped leader row."""
    if not line.text:
        return style != "pipes"
    return style == "leader" and not line.running and not line.text.endswith(_SENTENCE_END)


def _row_count(lines: list[_Line], a: int, b: int) -> int:
    return sum(1 for k in range(a, b) if lines[k].style is not None)


def _split_cells(lines: list[_Line], a: int, b: int) -> list[tuple[int, int]]:
    """Split a run of figure rows at a line with one figure just above a row of three or more: that line
    is the header ("Effective Date Step 1 ... Step 5") of the rows after it, not a row."""
    out: list[tuple[int, int]] = []
    start = a
    for k in range(a, b):
        if cells(lines[k].text) == 1 and k + 1 < b and cells(lines[k + 1].text) >= 3:
            lines[k].style = None  # a header line
            if k > start:
                out.append((start, k))
            start = k + 1
    if b > start:
        out.append((start, b))
    return out


def _header(lines: list[_Line], first: int, style: Style) -> tuple[str, int | None]:
    """The header above line `first`: the header-like lines just above it, or the first row of a pipe
    table (Markdown marks it with a separator line; an HTML table's first row names its columns)."""
    if style == "pipes":
        if first + 1 < len(lines) and _PIPE_SEPARATOR.match(lines[first + 1].text):
            return lines[first].text, lines[first].start
        if not any(ch.isdigit() for ch in lines[first].text):
            return lines[first].text, lines[first].start
    taken: list[_Line] = []
    k = first - 1
    while k >= 0 and len(taken) < MAX_HEADER_LINES and _is_header_line(lines[k]):
        taken.append(lines[k])
        k -= 1
    if not taken:
        return "", None
    taken.reverse()
    return _cap(" ".join(line.text for line in taken)), taken[0].start


def _cap(header: str) -> str:
    if len(header) <= MAX_HEADER_CHARS:
        return header
    return header[: MAX_HEADER_CHARS - 1].rsplit(" ", 1)[0] + LEADER


def find_tables(
    text: str, running: Callable[[str], bool] = lambda line: False, min_rows: int | None = None
) -> list[Table]:
    """The tables of one page's text, each with the header found on the same page ("" when none).

    `running` says which lines are running headers or footers (rag_core.structure.running_lines): they
    neither end a table nor count as content above or below it. `min_rows` lowers the rows a run needs
    to be a table, for a passage known to hold rows (its context names their headers).

    >>> text = "as follows:\\nVacation Years Workdays\\nFirst to Second … 15\\nTenth … 24\\n(c) Next clause."
    >>> [(t.header, [text[a:b] for a, b in t.rows]) for t in find_tables(text)]
    [('Vacation Years Workdays', ['First to Second … 15', 'Tenth … 24'])]
    """
    return _tables(_lines(text, running), min_rows)


def _tables(lines: list[_Line], min_rows: int | None = None) -> list[Table]:
    tables: list[Table] = []
    for a, b in _runs(lines, min_rows):
        style = lines[a].style or "cells"
        header, header_start = _header(lines, a, style)
        rows: list[tuple[int, int]] = []
        opened: int | None = None
        for line in lines[a:b]:
            if line.joins_next:
                opened = line.start
            elif line.style is not None:
                rows.append((line.start if opened is None else opened, line.end))
                opened = None
        other = [(ln.start, ln.end) for ln in lines[a:b] if ln.text and ln.style is None and not ln.joins_next]
        if style == "pipes" and header_start == lines[a].start:
            other.append(rows.pop(0))
        top = header_start if header_start is not None else lines[a].start
        above = any(line.text and not line.running for line in lines if line.end <= top)
        below = any(line.text and not line.running for line in lines[b:])
        if rows:
            tables.append(Table(style, rows, header, header_start, above, below, sorted(other)))
    return tables


def row_spans(text: str) -> list[tuple[int, int]]:
    """Spans of every table row in the text, and of the other lines inside its tables (a Markdown header
    row, "|---|" lines): the chunker and the sentence splitter keep each whole.

    >>> text = "Hire Date Percent\\n1st Quarter 100%\\n2nd Quarter 75%\\n3rd Quarter 50%"
    >>> [text[a:b] for a, b in row_spans(text)]
    ['1st Quarter 100%', '2nd Quarter 75%', '3rd Quarter 50%']
    """
    return whole_spans(find_tables(text))


def closing_header(text: str, running: Callable[[str], bool] = lambda line: False) -> tuple[Style | None, str]:
    """The header of a table that the page ends in, for its rows on the next page: (style, header).

    The page may end in rows (however few) or in the header alone; (None, "") when it ends in anything
    else. Style None with a header: the page ends in header lines, before any row.

    >>> closing_header("Text.\\nRates of Pay\\nEffective Date Step 1 Step 2\\n$) June 2021 55,567 57,508")
    ('cells', 'Rates of Pay Effective Date Step 1 Step 2')
    >>> closing_header("Vacation Years Workdays"), closing_header("A sentence.")
    ((None, 'Vacation Years Workdays'), (None, ''))
    """
    return _closing(_lines(text, running))


def _closing(lines: list[_Line]) -> tuple[Style | None, str]:
    last = next((k for k in range(len(lines) - 1, -1, -1) if lines[k].text and not lines[k].running), None)
    if last is None:
        return None, ""
    runs = [(a, b) for a, b in _runs(lines, min_rows=1) if b > last]
    if runs:
        first = runs[-1][0]
        style = lines[first].style or "cells"
        return style, _header(lines, first, style)[0]
    if _is_header_line(lines[last]):
        return None, _header(lines, last + 1, "cells")[0]
    return None, ""


def document_tables(pages: Sequence[Page], running: Callable[[str], bool]) -> dict[int, list[Table]]:
    """The tables of every page, by page number. A table that opens a page without a header of its own
    carries on the page before when that page ends in rows of its style or in a header: it takes that
    header ("Vacation Years Workdays" for the rows of page 57 that go on from page 56).
    """
    out: dict[int, list[Table]] = {}
    closing: tuple[Style | None, str] = (None, "")
    for page in pages:
        lines = _lines(page.text, running)
        tables = _tables(lines)
        if tables:
            first = tables[0]
            style, header = closing
            if header and not first.header and not first.lines_above and style in (None, first.style):
                tables[0] = replace(first, header=header, header_start=None)
        out[page.number] = tables
        closing = _closing(lines)
    return out


def whole_spans(tables: Sequence[Table]) -> list[tuple[int, int]]:
    """The spans the sentence splitter must keep whole: every row, and the other lines of each table."""
    return sorted(span for table in tables for span in [*table.rows, *table.other_lines])


def headers_in(tables: Sequence[Table], start: int, end: int) -> list[str]:
    """The distinct headers of the rows that lie in [start, end), in order."""
    found: list[str] = []
    for table in tables:
        if table.header and table.header not in found and any(a < end and b > start for a, b in table.rows):
            found.append(table.header)
    return found
