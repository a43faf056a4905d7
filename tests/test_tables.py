"""rag_core.tables: which lines are table rows, and the column headers each row is read with."""

from __future__ import annotations

from rag_core.structure import running_filter
from rag_core.tables import closing_header, document_tables, find_tables, row_spans, row_style
from rag_core.types import Page

RUNNING = "BCGEU and Gov't of BC & BCPSA (03/2025) Page {n}"

PAGE_56 = "\n".join(
    [
        RUNNING.format(n=45),
        "",
        "ARTICLE 18 - ANNUAL VACATIONS",
        "18.1 Annual Vacation Entitlement",
        "(b) A regular full-time employee who has received at least 10 days' pay at straight-time rates for each",
        "calendar month will have an annual vacation entitlement as follows:",
        "Vacation Years Workdays",
        "First to Second … 15",
        "Third … 16",
        "Ninth … 23",
        "Tenth … 24",
        "Thirteenth to fifteenth … 27",
    ]
)
PAGE_57 = "\n".join(
    [
        RUNNING.format(n=46),
        "",
        "Sixteenth to eighteenth … 28",
        "Twenty-fifth and thereafter … 35",
        "(c) Conversion of Hours - where an employee is granted vacation pursuant to this article, the",
        "entitlement shall be converted to hours on the basis of a seven-hour day.",
    ]
)


def _texts(text: str, spans: list[tuple[int, int]]) -> list[str]:
    return [text[a:b] for a, b in spans]


class TestRows:
    def test_row_styles(self) -> None:
        assert row_style("Tenth … 24") == "leader"
        assert row_style("First to Second ...... 15") == "leader"
        assert row_style("APS5.2 $ 74,449 $ 75,938 $ 76,698") == "cells"
        assert row_style("241-560 35%") == "cells"
        assert row_style("| £500 | Apprentices | £250 | £250 |") == "pipes"

    def test_prose_is_no_row(self) -> None:
        assert row_style("27.1.2.") is None  # a clause number alone
        assert row_style("The employee shall be paid within thirty (30) days of the request.") is None
        assert row_style("| --- | :---: |") is None  # a Markdown separator: part of a table, never a row
        wrapped = "for absences of ten (10) consecutive working days or more, a request for leave and 10"
        assert row_style(wrapped) is None  # a prose line that happens to end in a number is too long

    def test_leader_rows_with_their_header(self) -> None:
        (table,) = find_tables(PAGE_56)
        assert table.style == "leader" and table.header == "Vacation Years Workdays"
        assert _texts(PAGE_56, table.rows)[3] == "Tenth … 24"
        assert len(table.rows) == 5 and table.lines_above and not table.lines_below

    def test_aligned_columns_and_a_caption(self) -> None:
        text = (
            "Appendix A rates are below.\n"
            "EC-01 - Annual Rates of Pay (in dollars)\n"
            "Effective Date Step 1 Step 2 Step 3\n"
            "$) June 22, 2021 55,567 57,508 59,527\n"
            "A) June 22, 2022 57,512 59,521 61,610\n"
            "D) June 22, 2025 62,871 65,066 67,349\n"
            "EC-02 - Annual Rates of Pay (in dollars)\n"
            "Effective Date Step 1 Step 2 Step 3\n"
            "$) June 22, 2021 62,168 63,675 65,905\n"
            "A) June 22, 2022 64,344 65,904 68,212\n"
            "D) June 22, 2025 70,338 72,044 74,567"
        )
        first, second = find_tables(text)
        assert first.header == "EC-01 - Annual Rates of Pay (in dollars) Effective Date Step 1 Step 2 Step 3"
        assert second.header.startswith("EC-02") and len(second.rows) == 3
        assert _texts(text, second.rows)[-1].startswith("D) June 22, 2025 70,338")

    def test_markdown_table_header_and_rows(self) -> None:
        text = (
            "This is how it works:\n\n"
            "| Amount | Roles | On start |\n"
            "| ---: | :---: | ---: |\n"
            "| £500 | Apprentices | £250 |\n"
            "| £1500 | All other roles | £750 |\n\n"
            "Next paragraph."
        )
        (table,) = find_tables(text)
        assert table.header == "| Amount | Roles | On start |"
        assert _texts(text, table.rows) == ["| £500 | Apprentices | £250 |", "| £1500 | All other roles | £750 |"]
        # The header row and the separator are kept whole too, though they are no answer.
        assert "| ---: | :---: | ---: |" in _texts(text, row_spans(text))

    def test_wrapped_leader_row_is_one_row(self) -> None:
        text = "CONTENTS\nArticle 1 - Purpose … 3\nMemorandum 5 - Re: Privatization and Alternative Service\n"
        text += "Delivery … 166\nMemorandum 6 - Re: Service Delivery … 167"
        (table,) = find_tables(text)
        assert _texts(text, table.rows)[1] == "Memorandum 5 - Re: Privatization and Alternative Service\nDelivery … 166"

    def test_two_rows_of_figures_are_not_yet_a_table(self) -> None:
        assert find_tables("Leave in 2023 was 14\nLeave in 2024 was 15") == []
        assert len(find_tables("Leave in 2023 was 14\nLeave in 2024 was 15", min_rows=1)) == 1


class TestAcrossPages:
    def test_continued_table_takes_the_header_of_the_page_before(self) -> None:
        pages = [Page(55, RUNNING.format(n=44) + "\n\nText of clause 17.\n"), Page(56, PAGE_56), Page(57, PAGE_57)]
        pages.append(Page(58, RUNNING.format(n=47) + "\n\nMore text."))
        tables = document_tables(pages, running_filter(pages))
        (continued,) = tables[57]
        assert continued.header == "Vacation Years Workdays"
        assert _texts(PAGE_57, continued.rows) == ["Sixteenth to eighteenth … 28", "Twenty-fifth and thereafter … 35"]
        assert not continued.lines_above  # only the running header stands above it

    def test_header_alone_at_the_foot_of_a_page(self) -> None:
        before = "Text.\nVacation accrual\nYears of Service Hours-Biweekly Hours-Annual"
        assert closing_header(before) == (None, "Vacation accrual Years of Service Hours-Biweekly Hours-Annual")
        after = "In years 0 through 4 3.08 80\nIn years 5 through 10 4.62 120\nIn year 11 4.93 128\nMore text."
        tables = document_tables([Page(1, before), Page(2, after)], lambda line: False)
        assert tables[2][0].header == "Vacation accrual Years of Service Hours-Biweekly Hours-Annual"

    def test_no_header_is_carried_past_prose(self) -> None:
        first = PAGE_56 + "\nThe entitlement is pro rated for part-time employees."
        tables = document_tables([Page(1, first), Page(2, "Tenth … 24\nEleventh … 25")], lambda line: False)
        assert tables[2][0].header == ""
        assert closing_header(first) == (None, "")
