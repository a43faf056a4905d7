"""rag_core.answer.answerer: the relevance threshold, generators built once, the fallback, citations."""

from __future__ import annotations

import numpy as np
import pytest

from rag_core.answer import NOT_FOUND, Answerer, GeneratorUnavailable
from rag_core.answer.coverage import CoverageJudge
from rag_core.types import FloatArray, Hit

LEAVE = Hit(1, 0.8, "policy.pdf", "doc1", 4, 101, "Full-time employees accrue 20 days of paid leave per year.")
VPN = Hit(2, 0.5, "policy.pdf", "doc1", 7, 102, "A VPN connection is required when working from home.")


def _encode(texts: list[str]) -> FloatArray:
    """Bag-of-letters vectors: enough for the extractive answerer to rank sentences, no model needed."""
    out = np.zeros((len(texts), 26), np.float32)
    for i, t in enumerate(texts):
        for ch in t.lower():
            if "a" <= ch <= "z":
                out[i, ord(ch) - 97] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def floor(min_score: float) -> CoverageJudge:
    """A judge that refuses only below a cosine floor (the coverage model off)."""
    return CoverageJudge(_encode, None, min_score=min_score, min_coverage=0.0)


class TestAnswerer:
    def test_grounded_answer_cites_its_passage(self) -> None:
        answer = Answerer("extractive", _encode, floor(0.4)).stream("How many days of leave?", [LEAVE, VPN]).result()
        assert answer.grounded and "20 days" in answer.text
        first = answer.citations[0]
        assert (first.document, first.page, first.chunk_id) == ("policy.pdf", 4, 101)
        assert answer.to_json()["answer"] == answer.text and "text" not in answer.to_json()

    def test_below_the_threshold_nothing_is_generated(self) -> None:
        answerer = Answerer("extractive", _encode, floor(0.9))
        answer = answerer.stream("How many days of leave?", [LEAVE, VPN]).result()
        assert not answer.grounded and answer.text == NOT_FOUND and answer.citations == []
        assert answer.hits == [LEAVE, VPN]  # the evidence is still shown

    def test_generators_are_built_once_and_fall_back(self) -> None:
        answerer = Answerer("extractive", _encode, floor(0.4))
        first, warning = answerer.generator()
        assert answerer.generator("extractive")[0] is first and warning is None
        server, warning = answerer.generator("openai:http://127.0.0.1:9/v1#m")
        assert server.name.startswith("openai:") and warning is None  # a server is only tried when answering
        gen, warning = answerer.generator("hf:/no/such/model/dir")
        assert gen is first and warning and "/no/such/model/dir" in warning

    def test_malformed_spec_is_a_usage_error(self) -> None:
        with pytest.raises(ValueError, match="valid"):
            Answerer("gpt-9", _encode, floor(0.4))
        with pytest.raises(ValueError, match="valid"):
            Answerer("extractive", _encode, floor(0.4)).generator("hf:")

    def test_unavailable_extractive_is_not_hidden(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from rag_core.answer import answerer as module

        def broken(*a: object, **k: object) -> None:
            raise GeneratorUnavailable("broken")

        monkeypatch.setattr(module, "make_generator", broken)
        with pytest.raises(GeneratorUnavailable):
            Answerer("extractive", _encode, floor(0.4)).generator()


class TestExtractiveAnswers:
    """The answer states the fact: the sentence with the figure leads when the question asks for one."""

    def test_quantity_questions_lead_with_the_figure(self) -> None:
        from rag_core.answer.extractive import ExtractiveGenerator, asks_for_quantity

        hit = Hit(
            1,
            0.8,
            "agreement.pdf",
            "d",
            56,
            9,
            "Vacation entitlement depends on the years of continuous service with the employer. "
            "An employee with ten years of service earns twenty-four days of vacation each year.",
        )
        assert asks_for_quantity("How many vacation days do I earn after ten years of service?")
        text = ExtractiveGenerator(_encode).compose("How many vacation days after ten years of service?", [hit])
        assert text.startswith("An employee with ten years") or "twenty-four days" in text.split("[1]")[0]

    def test_no_dangling_colon_and_lists_come_with_their_lead(self) -> None:
        from rag_core.answer.extractive import ExtractiveGenerator

        dangling = Hit(
            1, 0.8, "h.pdf", "d", 1, 1, "Employees may work remotely with approval. With respect to working from home:"
        )
        text = ExtractiveGenerator(_encode).compose("Can I work from home remotely?", [dangling])
        assert not text.rstrip(" [1]").endswith(":")
        listed = Hit(
            1,
            0.8,
            "h.md",
            "d",
            1,
            2,
            "The pension contribution available to you is aligned to your grade:\n- Grade 12: 8% of salary",
        )
        text = ExtractiveGenerator(_encode).compose("What pension contribution is aligned to my grade?", [listed])
        assert "8% of salary" in text

    def test_a_list_brings_the_item_that_meets_the_question(self) -> None:
        """A colon line brings the list item the question asks about, whole ("label: value" is one line)."""
        from rag_core.answer.extractive import ExtractiveGenerator

        listed = Hit(
            1,
            0.8,
            "h.md",
            "d",
            1,
            2,
            "The pension contribution available to you is aligned to your grade:\n\n"
            "- Grade 9 - 10: 6% employer matched\n- Grade 11 - 12: 7% employer matched\n"
            "- Grade 13 - 15: 8% employer matched\n\nThe minimum contribution in every level is 4%.",
        )
        text = ExtractiveGenerator(_encode).compose("What pension contribution does grade 12 get?", [listed])
        assert "Grade 11 - 12: 7% employer matched" in text and "Grade 9 - 10" not in text


class TestTableRows:
    """A table row is quoted whole with its column headers, and leads when it holds the figure asked for."""

    TABLE = (
        "(b) A regular full-time employee who has received at least 10 days' pay at straight-time rates for each\n"
        "calendar month will have an annual vacation entitlement as follows:\n"
        "Vacation Years Workdays\nFirst to Second … 15\nThird … 16\nNinth … 23\nTenth … 24\nEleventh … 25"
    )
    PROSE = "During the first and subsequent vacation years an employee earns vacation for each month of 10 days' pay."

    def test_the_row_with_the_number_leads(self) -> None:
        from rag_core.answer.extractive import ExtractiveGenerator

        hits = [
            Hit(1, 0.8, "bcgeu.pdf", "d", 57, 1, self.PROSE),
            Hit(2, 0.7, "bcgeu.pdf", "d", 56, 2, self.TABLE),
        ]
        text = ExtractiveGenerator(_encode).compose("How many weeks of vacation after 10 years?", hits)
        assert text.startswith("Vacation Years Workdays: Tenth … 24 [2]")
        assert "Ninth" not in text and "Eleventh" not in text

    def test_a_continued_row_takes_the_header_it_was_indexed_with(self) -> None:
        from rag_core.answer.extractive import ExtractiveGenerator

        continued = Hit(
            1,
            0.8,
            "bcgeu.pdf",
            "d",
            57,
            3,
            "Sixteenth to eighteenth … 28\nNineteenth … 29\nTwentieth … 31\n(c) Conversion of Hours - where the "
            "workday is greater than seven hours, the entitlement is converted to hours.",
            context="bcgeu > ARTICLE 18 - ANNUAL VACATIONS\nVacation Years Workdays",
        )
        text = ExtractiveGenerator(_encode).compose("How many vacation days in my 20th year?", [continued])
        assert text.startswith("Vacation Years Workdays: Twentieth … 31 [1]")

    def test_an_introduction_brings_a_row_whole(self) -> None:
        from rag_core.answer.extractive import ExtractiveGenerator

        hit = Hit(1, 0.8, "bcgeu.pdf", "d", 56, 2, self.TABLE)
        text = ExtractiveGenerator(_encode, max_sentences=1).compose("What is the annual vacation entitlement?", [hit])
        intro, row = text.split(" [1] ", 1)
        assert intro.endswith("as follows:")  # never left dangling: the table it introduces follows
        assert row.startswith("Vacation Years Workdays: ") and row.endswith(" [1]")
        assert row.removesuffix(" [1]").split(": ", 1)[1] in self.TABLE.split("\n")  # one row, whole
