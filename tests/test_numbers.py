"""rag_core.numbers: numbers written any way, their ranges, and the query variants keyword search adds."""

from __future__ import annotations

import pytest

from rag_core.numbers import matched, mentions, quantities, query_variants, ranges, spellings, values


class TestValues:
    @pytest.mark.parametrize(
        ("text", "value"),
        [
            ("10", 10),
            ("ten", 10),
            ("tenth", 10),
            ("10th", 10),
            ("Twenty-first", 21),
            ("twenty fifth", 25),
            ("two hundred", 200),
            ("1,500", 1500),
        ],
    )
    def test_every_spelling_has_its_value(self, text: str, value: int) -> None:
        assert values(text) == {value}

    def test_decimals_amounts_and_clause_numbers_are_not_whole_numbers(self) -> None:
        assert values("clause 18.3, 9.375 hours, $2.25, 35% and nine decimal three seven five") == set()

    def test_ordinals_and_units(self) -> None:
        found = [(m.value, m.ordinal, m.unit) for m in mentions("the eighteenth (18th) year; ten (10) working days")]
        assert found == [(18, True, "year"), (18, True, "year"), (10, False, "day"), (10, False, "day")]

    def test_ranges(self) -> None:
        assert ranges("Thirteenth to fifteenth … 27") == [(13, 15)]
        assert ranges("In years 5 through 10 4.62 120") == [(5, 10)]
        assert ranges("Twenty-fifth and thereafter … 35") == [(25, float("inf"))]
        assert ranges("one-quarter days and one-twelfth of it") == []  # fractions, not ranges


class TestMatching:
    def test_a_number_matches_its_other_spellings_and_ranges(self) -> None:
        ten_years = quantities("How many days after 10 years?")
        assert matched(ten_years, "Tenth … 24") == ten_years
        assert matched(ten_years, "Ninth … 23") == set()
        assert matched(quantities("in my 14th year"), "Thirteenth to fifteenth … 27")
        assert matched(quantities("about 300 hours"), "241-560 35%")

    def test_another_unit_is_no_match(self) -> None:
        assert matched(quantities("after 10 years"), "at least 10 days' pay each month") == set()
        assert matched(quantities("after 10 years"), "ten (10) years of service")


class TestQueryVariants:
    def test_ordinals_cardinals_and_digits(self) -> None:
        assert query_variants("vacation after 10 years").split() == ["ten", "tenth", "10th"]
        assert query_variants("my fifteenth year").split() == ["15", "fifteen", "15th"]
        assert query_variants("two weeks of notice").split() == ["2", "second", "2nd"]

    def test_large_numbers_and_none(self) -> None:
        assert query_variants("300 hours or $2,500 in 2024") == ""
        assert query_variants("Can I work from home?") == ""

    def test_spellings(self) -> None:
        assert spellings(3) == ["3", "three", "third", "3rd"]
        assert spellings(22) == ["22", "twenty-two", "twenty-second", "22nd"]
