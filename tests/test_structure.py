"""rag_core.structure: headings recognised from text, the heading path across pages, running headers."""

from __future__ import annotations

import pytest

from rag_core.structure import HeadingPath, context_line, document_title, heading_level, headings, running_lines
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


class TestContext:
    def test_title_from_the_file_name(self) -> None:
        assert document_title("ocsan-supervisor-group-mou-2025-2028.pdf", []) == "ocsan supervisor group mou 2025 2028"
        assert document_title(".pdf", [Page(1, "\n\nLeave Handbook\nText")]) == "Leave Handbook"

    def test_context_line_is_capped(self) -> None:
        assert context_line("handbook", ["A", "B"]) == "handbook > A > B"
        assert len(context_line("t", ["x" * 500])) <= 240
