"""rag_core.structure: headings recognised from text, the heading path across pages, running headers."""

from __future__ import annotations

import pytest

from rag_core.structure import (
    HeadingPath,
    context_line,
    document_title,
    heading_level,
    headings,
    page_labels,
    running_lines,
)
from rag_core.types import Page


class TestHeadings:
    @pytest.mark.parametrize(
        ("line", "level"),
        [
            ("# Leave policy", 1),
            ("### Carrying leave over", 3),
            ("ARTICLE 18 - ANNUAL VACATIONS", 1),
            ("Article 21: leave with pay for family-related responsibilities", 1),
            ("Part 3: Leave", 1),
            ("18.1 Annual Vacation Entitlement", 2),
            ("4.2 Sick leave", 2),
            ("28.5.7. Bridge of Service", 3),
            ("ANNUAL LEAVE AND HOLIDAYS", 1),
        ],
    )
    def test_headings(self, line: str, level: int) -> None:
        found = heading_level(line)
        assert found is not None and found[0] == level

    @pytest.mark.parametrize(
        "line",
        [
            "1. Employees shall give two weeks' notice.",  # a numbered sentence
            "Tenth ..... 24",  # a table row
            "18.2 Vacation earnings for partial years are prorated as follows:",  # a clause, not a title
            "12 2022 2023",
            "the employee may request leave",
            "",
        ],
    )
    def test_not_headings(self, line: str) -> None:
        assert heading_level(line) is None

    def test_path_carries_across_pages_and_pops_at_the_same_level(self) -> None:
        pages = [
            Page(1, "ARTICLE 18 - ANNUAL VACATIONS\n18.1 Annual Vacation Entitlement\nFirst ..... 15"),
            Page(2, "Tenth ..... 24\n18.2 Vacation Scheduling\nRequests go to the supervisor."),
            Page(3, "ARTICLE 19 - HOLIDAYS\nNew Year's Day."),
        ]
        path = HeadingPath(pages)
        assert path.at(2, 0) == ["ARTICLE 18 - ANNUAL VACATIONS", "18.1 Annual Vacation Entitlement"]
        assert path.at(2, pages[1].text.index("Requests")) == [
            "ARTICLE 18 - ANNUAL VACATIONS",
            "18.2 Vacation Scheduling",
        ]
        assert path.at(3, 30) == ["ARTICLE 19 - HOLIDAYS"]

    def test_running_headers_are_not_headings(self) -> None:
        pages = [
            Page(i, f"COLLECTIVE AGREEMENT 2022\n{i}.1 Topic Number {'abcd'[i - 1]}\nPage {i} of 4")
            for i in range(1, 5)
        ]
        assert "COLLECTIVE AGREEMENT #" in running_lines(pages)
        assert [h.text for h in headings(pages)] == [f"{i}.1 Topic Number {'abcd'[i - 1]}" for i in range(1, 5)]

    def test_markdown_headings_alike_on_every_page_stay_headings(self) -> None:
        """Sheets named by year (or "Sheet1".."Sheet3") differ only in digits: still their pages' headings."""
        pages = [
            Page(i, f"# {year} holidays\n\n| Holiday | Date |\n| --- | --- |")
            for i, year in enumerate((2024, 2025, 2026), 1)
        ]
        assert [h.text for h in headings(pages)] == ["2024 holidays", "2025 holidays", "2026 holidays"]


class TestContext:
    def test_title_from_the_file_name(self) -> None:
        assert document_title("ocsan-supervisor-group-mou-2025-2028.pdf", []) == "ocsan supervisor group mou 2025 2028"
        assert document_title(".pdf", [Page(1, "\n\nLeave Handbook\nText")]) == "Leave Handbook"

    def test_context_line_is_capped(self) -> None:
        assert context_line("handbook", ["A", "B"]) == "handbook > A > B"
        assert len(context_line("t", ["x" * 500])) <= 240


class TestPageLabels:
    def test_offset_agreed_by_the_pages_labels_from_the_first_numbered_page(self) -> None:
        pages = [Page(1, "AGREEMENT"), Page(2, "Contents\ni")]
        pages += [Page(i, f"Clause {i}\nmore text\n- {i - 2} -") for i in range(3, 9)]
        pages[5] = Page(6, "Clause 6 text whose footer the extraction lost")
        labels = page_labels(pages)
        assert labels == {3: "1", 4: "2", 5: "3", 6: "4", 7: "5", 8: "6"}

    def test_page_n_of_m_at_the_top_and_no_labels_without_agreement(self) -> None:
        top = [Page(i, f"Page {i + 10} of 300\nText.") for i in range(1, 5)]
        assert page_labels(top) == {i: str(i + 10) for i in range(1, 5)}
        numbers_in_text = [Page(i, f"Text\n{n}") for i, n in ((1, 7), (2, 30), (3, 2), (4, 99))]
        assert page_labels(numbers_in_text) == {}
        assert page_labels([Page(1, "1"), Page(2, "2")]) == {}  # too few to trust


def test_real_documents_printed_numbers() -> None:
    from pathlib import Path

    from rag_core.loaders import load_path

    corpus = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "hr"
    path = corpus / "bcgeu-19th-main-public-service-agreement-2022-2025.pdf"
    if not path.exists():
        pytest.skip(f"the shared corpus is not at {corpus}")
    labels = page_labels(load_path(path).pages)
    assert labels[56] == "45"  # the vacation table: printed "Page 45" on PDF page 56
