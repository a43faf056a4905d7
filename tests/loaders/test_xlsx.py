"""rag_core.loaders.xlsx: one sheet one page cited by name, each row a pipe row under its header row,
numbers as Excel shows them, empty rows, columns and sheets left out, huge or broken workbooks refused."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from openpyxl import Workbook

from rag_core.config import Settings
from rag_core.embedding import Embedder
from rag_core.engine import Engine
from rag_core.loaders import (
    SUPPORTED_SUFFIXES,
    DamagedFile,
    LegacyExcelFile,
    NoExtractableText,
    PasswordRequired,
    TooManyPages,
    TooMuchText,
    is_xlsx,
    load_bytes,
)
from rag_core.loaders import xlsx as xlsx_loader
from rag_core.types import Hit


def xlsx_bytes(build: Callable[[Workbook], object]) -> bytes:
    workbook = Workbook()
    build(workbook)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def leave_book(workbook: Workbook) -> None:
    """A leave sheet whose table starts below a title and right of an empty column, an empty sheet, and
    a one-column notes sheet."""
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Leave"
    sheet.append(["Annual leave entitlement"])
    sheet.append([])
    sheet.append([None, "Years of service", "Days"])
    for years, days in ((1, 20.0), (5, 25.0), (10, 30.0)):
        sheet.append([None, years, days])
    workbook.create_sheet("Blank")
    notes = workbook.create_sheet("Notes")
    notes.append(["Leave is booked in the HR portal."])
    notes.append(["Unused days lapse on 31 March."])


class TestText:
    def test_one_page_per_sheet_with_data_labelled_by_name(self) -> None:
        loaded = load_bytes(xlsx_bytes(leave_book), "leave.xlsx")
        assert loaded.kind == "xlsx" and loaded.page_count == 3
        assert [(p.number, p.label) for p in loaded.pages] == [(1, "sheet: Leave"), (3, "sheet: Notes")]

    def test_rows_under_their_header_with_empty_rows_and_columns_left_out(self) -> None:
        text = load_bytes(xlsx_bytes(leave_book), "leave.xlsx").pages[0].text
        assert text == (
            "# Leave\n\nAnnual leave entitlement\n\n"
            "| Years of service | Days |\n| --- | --- |\n| 1 | 20 |\n| 5 | 25 |\n| 10 | 30 |"
        )

    def test_one_column_sheet_is_plain_lines(self) -> None:
        text = load_bytes(xlsx_bytes(leave_book), "leave.xlsx").pages[1].text
        assert text == "# Notes\n\nLeave is booked in the HR portal.\nUnused days lapse on 31 March."

    def test_values_as_excel_shows_them(self) -> None:
        def build(workbook: Workbook) -> None:
            sheet = workbook.active
            assert sheet is not None
            sheet.append(["Item", "Value"])
            sheet.append(["Pension", 0.05])
            sheet["B2"].number_format = "0%"
            sheet.append(["Start", dt.datetime(2025, 4, 1)])
            sheet.append(["Rate", 12.5])
            sheet.append(["Note | with pipe", "two\nlines"])
            sheet.append(["Formula", "=1+1"])  # never computed by Excel: no cached value, an empty cell

        text = load_bytes(xlsx_bytes(build), "v.xlsx").pages[0].text
        assert "| Pension | 5% |" in text and "| Start | 2025-04-01 |" in text and "| Rate | 12.5 |" in text
        assert "| Note / with pipe | two lines |" in text and "| Formula | |" in text and "=1+1" not in text

    def test_cell_text_numbers(self) -> None:
        assert [xlsx_loader.cell_text(v) for v in (15.0, 15, -3.0, 1 / 3, 1e20)] == [
            "15",
            "15",
            "-3",
            "0.333333333333333",
            "1e+20",
        ]

    def test_cell_merged_down_gives_its_value_to_each_of_its_rows(self) -> None:
        """Excel keeps a merged value in the top cell only: "Scotland" must still read with its second
        holiday. A header cell merged over two header rows adds no row of its own."""

        def build(workbook: Workbook) -> None:
            sheet = workbook.active
            assert sheet is not None
            sheet.append(["Region", "Holiday", "Date"])
            sheet.append([])
            sheet.merge_cells("A1:A2")
            for row in (("Scotland", "St Andrew's Day", "30 November"), (None, "2 January", "2 January")):
                sheet.append(list(row))
            sheet.append(["England", "Easter Monday", "21 April"])
            sheet.merge_cells("A3:A4")
            sheet.merge_cells("B5:C5")  # merged across: kept once, in its first column

        text = load_bytes(xlsx_bytes(build), "holidays.xlsx").pages[0].text
        assert text.endswith(
            "| Region | Holiday | Date |\n| --- | --- | --- |\n| Scotland | St Andrew's Day | 30 November |\n"
            "| Scotland | 2 January | 2 January |\n| England | Easter Monday | |"
        )

    def test_max_pages_counts_sheets(self) -> None:
        with pytest.raises(TooManyPages, match="too many sheets: 3"):
            load_bytes(xlsx_bytes(leave_book), "leave.xlsx", max_pages=2)


class TestDetection:
    def test_detected_by_bytes_not_extension(self) -> None:
        data = xlsx_bytes(leave_book)
        assert load_bytes(data, "leave.pdf").kind == "xlsx" and load_bytes(data, "leave").kind == "xlsx"
        assert is_xlsx(data) and not is_xlsx(b"PK\x03\x04 not a zip")

    def test_in_the_supported_list(self) -> None:
        assert ".xlsx" in SUPPORTED_SUFFIXES and ".xls" not in SUPPORTED_SUFFIXES

    def test_legacy_xls_gets_the_way_out(self) -> None:
        ole2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 200 + "Workbook".encode("utf-16-le")
        message = r"legacy Excel \.xls file: save it as \.xlsx or PDF"
        with pytest.raises(LegacyExcelFile, match=message):
            load_bytes(ole2, "leave.xls")
        with pytest.raises(LegacyExcelFile, match=message):
            load_bytes(ole2, "leave.pdf")  # detected from the bytes, not the name
        with pytest.raises(LegacyExcelFile, match=message):
            load_bytes(b"bytes of an .xls we cannot place", "old.xls")

    def test_encrypted_xlsx_asks_for_the_password_off(self) -> None:
        ole2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 200 + "EncryptedPackage".encode("utf-16-le")
        with pytest.raises(PasswordRequired, match="remove the password"):
            load_bytes(ole2, "leave.xlsx")


class TestFailures:
    def test_truncated_is_damaged(self) -> None:
        data = xlsx_bytes(leave_book)
        with pytest.raises(DamagedFile, match="damaged Excel file"):
            load_bytes(data[: len(data) // 2], "leave.xlsx")

    def test_broken_sheet_xml_is_damaged(self) -> None:
        source = zipfile.ZipFile(io.BytesIO(xlsx_bytes(leave_book)))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            for item in source.infolist():
                body = b"<worksheet><unclosed" if item.filename == "xl/worksheets/sheet1.xml" else source.read(item)
                archive.writestr(item, body)
        with pytest.raises(DamagedFile, match="damaged Excel file.*re-save it in Excel"):
            load_bytes(out.getvalue(), "leave.xlsx")

    def test_every_sheet_empty_has_no_text(self) -> None:
        with pytest.raises(NoExtractableText, match="every sheet"):
            load_bytes(xlsx_bytes(lambda workbook: workbook.create_sheet("Also empty")), "empty.xlsx")

    def test_too_many_cells_says_what_to_do(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(xlsx_loader, "MAX_CELLS", 10)
        with pytest.raises(TooMuchText, match=r"more than 10 .*sheet 'Leave'.*delete the rows and columns"):
            load_bytes(xlsx_bytes(leave_book), "leave.xlsx")


class TestSearch:
    """A workbook through the engine: a row found and answered with its header, cited by sheet."""

    @pytest.fixture
    def engine(self, tmp_path: Path, embedder: Embedder) -> Engine:
        def build(workbook: Workbook) -> None:
            leave_book(workbook)
            sick = workbook.create_sheet("Sick pay")
            sick.append(["Weeks of absence", "Pay"])
            sick.append(["1 to 4", "Full pay"])
            sick.append(["5 to 12", "Half pay"])

        engine = Engine(Settings(data_dir=tmp_path / "kb"), embedder=embedder)
        result = engine.ingest_bytes("leave.xlsx", xlsx_bytes(build))
        assert result.status == "added", result.error
        assert result.pages == 4  # the page count is the sheet count, the empty sheet included
        assert [p.suffix for p in (tmp_path / "kb" / "originals").iterdir()] == [".xlsx"]  # kept as what it is
        return engine

    def test_row_answered_with_its_header_and_cited_by_sheet(self, engine: Engine) -> None:
        question = "How many days of leave after 5 years of service?"
        top = engine.search(question, k=3)[0]
        assert "| 5 | 25 |" in top.text and "Years of service" in top.context
        assert top.page_cited == "sheet: Leave"
        answer = engine.answer(question)
        assert answer.grounded and "25" in answer.text

    def test_sheet_is_cited_by_name(self) -> None:
        hit = Hit(1, 0.7, "l.xlsx", "d", 3, 1, "text", page_label="sheet: Notes")
        assert hit.page_cited == "sheet: Notes"
