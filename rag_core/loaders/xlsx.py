"""Excel (.xlsx): one sheet is one page, cited by its name ("sheet: Leave"); a sheet's rows become pipe
rows under its header row, so rag_core.tables reads each row with its column headers.

What is read: the values of each worksheet as Excel last computed them (a formula gives its cached result,
not its source), in row order. The header is the first row with two or more filled cells; single-cell
rows above it (a sheet title, a note) stay plain lines, and a sheet of one column is plain lines
throughout. Empty rows and columns are left out, so a cell sits under its own header even when the
table starts in column C. A cell merged down over several rows ("Scotland" beside each of its holidays)
gives its value to each of those rows that holds values of its own, so every row reads whole (Excel
keeps the value only in the top cell; a header cell merged over two header rows adds no row). A cell
merged across columns stays in its first column, once. Numbers read as Excel shows them plainly: 15,
not "15.0"; a percentage format gives "5%"; dates are ISO dates. The sheet's name is a "#" heading
above its rows, which puts it in every chunk's heading path. What is left out: chart sheets, charts,
images, comments, formatting.

Memory: the workbook is streamed (openpyxl's read-only mode), and a workbook past `MAX_CELLS` cells is
refused with a message that says what to do, before its rows are all held.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
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
from rag_core.loaders.ooxml import WORKBOOK_PART, check_unpacked_size, zip_holds
from rag_core.types import SHEET_LABEL, LoadedFile, Page

if TYPE_CHECKING:  # openpyxl loads only when a workbook arrives, not in every parse worker
    from openpyxl.worksheet._read_only import ReadOnlyWorksheet

SUFFIXES = (".xlsx",)
# Cells read (empty ones between filled cells included) in the whole workbook. A genuine policy workbook
# holds thousands; two million is a data export, which would hold hundreds of MB as Python objects.
MAX_CELLS = 2_000_000
MAX_LABEL_CHARS = 60
MAX_MERGED_ROWS = 10_000  # a range merged down a whole column (A1:A1048576) fills the rows it has, no more
_DAMAGED = "could not be read: damaged Excel file; re-save it in Excel and upload it again"


def is_xlsx(data: bytes) -> bool:
    """True when the bytes are a zip holding an Excel workbook part, whatever the file is named.

    >>> is_xlsx(b"%PDF-1.7")
    False
    """
    return zip_holds(data, WORKBOOK_PART)


def load_xlsx(data: bytes, *, max_pages: int | None = None) -> LoadedFile:
    """Read an .xlsx into one page per worksheet with data (see the module docstring).

    Raises `DamagedFile` for a zip that is not a readable workbook, `TooMuchText` past `MAX_CELLS` or the
    text limits, `NoExtractableText` when no sheet holds a value, `TooManyPages` past `max_pages` sheets.
    """
    from openpyxl import load_workbook

    check_unpacked_size(data, WORKBOOK_PART, _DAMAGED)
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            sheets = workbook.worksheets
            if max_pages is not None and len(sheets) > max_pages:
                raise TooManyPages(f"too many sheets: {len(sheets)}, the limit is {max_pages} (raise RAG_MAX_PAGES)")
            budget = [MAX_CELLS]
            texts = [_sheet_text(sheet, budget, _merged_down(workbook, sheet)) for sheet in sheets]
            names = [sheet.title for sheet in sheets]
        finally:
            workbook.close()
    except (LoadError, MemoryError):
        raise
    except Exception as error:  # openpyxl raises what the broken part provokes: KeyError, ValueError, XML errors ...
        raise DamagedFile(f"{_DAMAGED} ({type(error).__name__}: {error})") from error
    pages = [Page(i, t, sheet_label(name)) for i, (name, t) in enumerate(zip(names, texts, strict=True), 1) if t]
    if not pages:
        raise NoExtractableText("no text: every sheet of the workbook is empty (only charts or images?)")
    total = sum(len(p.text) for p in pages)
    if total > MAX_FILE_CHARS:
        raise TooMuchText(too_much_text_message(total))
    for page in pages:
        if len(page.text) > MAX_PAGE_CHARS:
            raise TooMuchText(
                f"too much text on {page.label}: {len(page.text):,} characters, the limit is {MAX_PAGE_CHARS:,} "
                "per sheet (split the sheet into several sheets, or upload only the rows people will ask about)"
            )
    return LoadedFile(kind="xlsx", pages=pages, page_count=len(sheets))


def sheet_label(name: str) -> str:
    """How a citation names a sheet.

    >>> sheet_label("Leave")
    'sheet: Leave'
    """
    name = " ".join(name.split())
    if len(name) > MAX_LABEL_CHARS:
        name = name[: MAX_LABEL_CHARS - 1] + "\u2026"
    return f"{SHEET_LABEL}{name}"


def _sheet_text(sheet: ReadOnlyWorksheet, budget: list[int], merged: dict[tuple[int, int], tuple[int, int]]) -> str:
    """The sheet as text: its name as a heading, leading single-cell rows as lines, then the table."""
    sheet.reset_dimensions()  # read the cells the file holds, not the range its (possibly stale) header claims
    rows = list(_filled_rows(sheet.iter_rows(), budget, sheet.title, merged))
    if not rows:
        return ""
    lines = ["# " + " ".join(sheet.title.split()), ""]
    first = next((i for i, cells in enumerate(rows) if sum(1 for v in cells if v) >= 2), None)
    if first is None:  # one column: plain lines
        lines.extend(" ".join(v for v in cells if v) for cells in rows)
        return normalize_text("\n".join(lines))
    lines.extend(" ".join(v for v in cells if v) for cells in rows[:first])
    if first:
        lines.append("")
    table = rows[first:]
    used = sorted({c for row in table for c, value in enumerate(row) if value})  # empty columns left out
    for i, row in enumerate(table):
        cells = [row[c] if c < len(row) else "" for c in used]
        lines.append("| " + " | ".join(cells) + " |")
        if i == 0:
            lines.append("| " + " | ".join("---" for _ in cells) + " |")
    return normalize_text("\n".join(lines))


def _filled_rows(
    rows: Iterable[tuple[object, ...]],
    budget: list[int],
    title: str,
    merged: dict[tuple[int, int], tuple[int, int]] | None = None,
) -> Iterable[list[str]]:
    """Each row with at least one value, as cell texts; counts cells against the workbook's budget.
    `merged` maps a cell under the top of a range merged down (row, column, 1-based) to that top cell,
    whose value it then shows."""
    merged = merged or {}
    tops = set(merged.values())
    by_row: dict[int, list[tuple[int, tuple[int, int]]]] = {}
    for (below_r, below_c), top in merged.items():
        by_row.setdefault(below_r, []).append((below_c, top))
    seen: dict[tuple[int, int], str] = {}  # the values of the tops of merged ranges
    for r, row in enumerate(rows, 1):
        budget[0] -= len(row)
        if budget[0] < 0:
            raise TooMuchText(
                f"too many cells: the workbook holds more than {MAX_CELLS:,} (reached on sheet {title!r}); "
                "delete the rows and columns nobody will ask about, or split the workbook, and upload it again"
            )
        cells = [cell_text(getattr(c, "value", None), getattr(c, "number_format", None)) for c in row]
        r = next((n for c in row if isinstance(n := getattr(c, "row", None), int)), r)  # rows may skip
        for c, value in enumerate(cells, 1):
            if (r, c) in tops:
                seen[(r, c)] = value
        if not any(cells):
            continue
        for below_c, top in by_row.get(r, ()):
            if top in seen:
                cells += [""] * (below_c - len(cells))
                cells[below_c - 1] = cells[below_c - 1] or seen[top]
        yield cells


_CELL_REF = re.compile(r"^\$?([A-Z]{1,3})\$?([0-9]{1,7})$")


def _merged_down(workbook: object, sheet: ReadOnlyWorksheet) -> dict[tuple[int, int], tuple[int, int]]:
    """The cells under the top of each range merged over several rows, in its first column: (row, column)
    to the top cell. Read from the sheet's XML (openpyxl's read-only mode does not read merges); a sheet
    whose merges cannot be read is read without them."""
    archive, path = getattr(workbook, "_archive", None), getattr(sheet, "_worksheet_path", None)
    out: dict[tuple[int, int], tuple[int, int]] = {}
    if archive is None or not path:
        return out
    try:
        with archive.open(path) as source:
            for _, element in ET.iterparse(source):
                if element.tag.endswith("}mergeCell") and ":" in (ref := element.get("ref", "")):
                    first, last = (_cell_ref(part) for part in ref.split(":", 1))
                    if first and last and last[0] > first[0]:
                        for row in range(first[0] + 1, min(last[0], first[0] + MAX_MERGED_ROWS) + 1):
                            out[(row, first[1])] = first
                element.clear()
    except (KeyError, ET.ParseError, OSError):
        return {}
    return out


def _cell_ref(ref: str) -> tuple[int, int] | None:
    """ "B12" -> (12, 2): row and column, 1-based."""
    m = _CELL_REF.match(ref.strip().upper())
    if m is None:
        return None
    column = 0
    for letter in m.group(1):
        column = column * 26 + ord(letter) - ord("A") + 1
    return int(m.group(2)), column


def cell_text(value: object, number_format: str | None = None) -> str:
    """A cell's value as a person reads it: whole numbers without ".0", percentages as "%", ISO dates,
    whitespace collapsed, "|" (the cell separator) as "/".

    >>> cell_text(15.0), cell_text(2.5), cell_text(0.05, "0%"), cell_text(True), cell_text(dt.datetime(2025, 1, 31))
    ('15', '2.5', '5%', 'TRUE', '2025-01-31')
    >>> cell_text(" Annual |\\n leave "), cell_text(None), cell_text(0.1 + 0.2)
    ('Annual / leave', '', '0.3')
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        percent = bool(number_format) and "%" in str(number_format)
        return _number(value * 100 if percent else value) + ("%" if percent else "")
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(" ", "minutes")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.isoformat("minutes")
    return " ".join(str(value).replace("|", "/").split())


def _number(value: float) -> str:
    """15.0 -> "15", 0.30000000000000004 -> "0.3": at most 15 significant digits, as Excel shows them."""
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.15g}"
