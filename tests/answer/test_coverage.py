"""rag_core.answer.coverage: the refusal decision reads more than the best passage's cosine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag_core.answer import refusal_text
from rag_core.answer.coverage import (
    DEFAULT_MODEL,
    REFERENCE_VOCABULARY,
    CoverageJudge,
    CoverageModel,
    content_terms,
    fit_model,
)
from rag_core.config import Settings
from rag_core.embedding import Embedder
from rag_core.engine import Engine
from rag_core.types import Answer, Coverage, Hit

LEAVE = "Full-time employees accrue 20 days of paid annual leave per calendar year."
ADJACENT = "Leave requests must be submitted to your manager at least two weeks in advance of the leave."


def hit(text: str, score: float, rank: int = 1) -> Hit:
    return Hit(rank, score, "policy.pdf", "doc1", rank, 100 + rank, text)


class TestSignals:
    def test_question_words_are_not_topic_words(self) -> None:
        assert [t for _, t in content_terms("How much paid leave can I get, and when?")] == ["paid", "leav"]
        assert content_terms("What can I do?") == []

    def test_unknown_words_are_named_as_written(self, embedder: Embedder) -> None:
        big = {"bring", "offic"} | {f"word{i}" for i in range(REFERENCE_VOCABULARY)}
        judge = CoverageJudge(embedder.encode_passage, lambda: big, min_score=0.2, min_coverage=0.2)
        verdict = judge.judge("Can I bring my Dogs to the office?", [hit(LEAVE, 0.3)])
        assert verdict.unknown_terms == ["Dogs"] and verdict.unknown_share == pytest.approx(1 / 3)

    def test_absence_from_a_small_vocabulary_says_little(self, embedder: Embedder) -> None:
        """One short policy lacks most everyday words: their absence is weighed by the vocabulary's size."""
        small = CoverageJudge(embedder.encode_passage, lambda: {"bring", "offic"}, min_score=0.2, min_coverage=0.2)
        verdict = small.judge("Can I bring my Dogs to the office?", [hit(LEAVE, 0.3)])
        assert verdict.unknown_terms == ["Dogs"] and 0 < verdict.unknown_share < 0.001

    def test_the_sentence_that_says_it_beats_the_topic_next_to_it(self, embedder: Embedder) -> None:
        judge = CoverageJudge(embedder.encode_passage, None, min_score=0.2, min_coverage=0.2)
        question = "How many days of paid annual leave do full-time employees get per year?"
        stated = judge.judge(question, [hit(f"{ADJACENT} {LEAVE}", 0.5)])
        beside = judge.judge(question, [hit(ADJACENT, 0.5)])
        assert stated.best_sentence > beside.best_sentence and stated.confidence > beside.confidence

    def test_model_direction(self) -> None:
        """More similar sentences and passages raise the confidence; words no document has lower it."""
        model = CoverageModel(w_sentence=10.0, w_passage=5.0, w_unknown=-5.0, bias=-7.0)
        base = model.confidence(0.5, 0.5, 0.0)
        assert model.confidence(0.7, 0.5, 0.0) > base > model.confidence(0.5, 0.5, 0.5)
        assert model.confidence(0.5, 0.7, 0.0) > base
        assert DEFAULT_MODEL.confidence(0.7, 0.5, 0.0) > DEFAULT_MODEL.confidence(0.4, 0.5, 0.0)
        assert 0.0 < DEFAULT_MODEL.confidence(-5.0, -5.0, 1.0) < 1e-6  # clipped, never a math error


class TestDecision:
    def test_floor_and_model(self, embedder: Embedder) -> None:
        judge = CoverageJudge(embedder.encode_passage, None, min_score=0.6, min_coverage=0.0)
        assert not judge.judge("How many days of leave?", [hit(LEAVE, 0.5)]).covered  # below the floor
        assert judge.judge("How many days of leave?", [hit(LEAVE, 0.7)]).covered  # model off: the floor only
        strict = CoverageJudge(embedder.encode_passage, None, min_score=0.0, min_coverage=1.0)
        assert not strict.judge("How many days of leave?", [hit(LEAVE, 0.7)]).covered
        assert not judge.judge("How many days of leave?", []).covered

    def test_bad_threshold_is_refused(self) -> None:
        with pytest.raises(ValueError, match="min_coverage"):
            CoverageJudge(lambda t: np.zeros((len(t), 1), np.float32), None, min_score=0.2, min_coverage=1.5)
        with pytest.raises(ValueError, match="min_coverage"):
            Settings(min_coverage=-0.1)

    def test_refusal_names_what_no_document_mentions(self) -> None:
        assert refusal_text(None) == "I could not find this in the uploaded documents."
        two = Coverage(False, 0.1, 0.3, 0.3, 0.5, ["tattoos", "piercings"])
        assert refusal_text(two).endswith("None of them mentions “tattoos” or “piercings”.")


class TestFit:
    def test_fit_separates_and_orders_the_signals(self) -> None:
        rng = np.random.default_rng(0)
        covered = rng.random(400) < 0.8
        x = np.column_stack(
            [
                np.where(covered, 0.65, 0.45) + rng.normal(0, 0.06, 400),
                np.where(covered, 0.60, 0.45) + rng.normal(0, 0.06, 400),
                np.where(covered, 0.02, 0.25) * rng.random(400),
            ]
        )
        model = fit_model(x, covered.tolist())
        assert model.w_sentence > 0 and model.w_passage > 0 and model.w_unknown < 0
        predicted = np.array([model.confidence(*row) >= 0.5 for row in x])
        assert (predicted == covered).mean() > 0.9

    def test_fit_needs_both_kinds(self) -> None:
        with pytest.raises(ValueError, match="covered and uncovered"):
            fit_model(np.zeros((3, 3)), [True, True, True])

    def test_model_is_a_record(self) -> None:
        assert CoverageModel(1.0, 1.0, -1.0, 0.0).confidence(0.0, 0.0, 0.0) == pytest.approx(0.5)


class TestAsk:
    """Through the engine, as an employee asks: a question the documents do not touch is refused and
    says which words none of them mentions; the documents' own questions are answered."""

    def test_refuses_what_no_document_covers(self, tmp_path: Path, embedder: Embedder, policy_pdf: Path) -> None:
        engine = Engine(Settings(data_dir=tmp_path / "kb"), embedder=embedder)
        engine.ingest_paths([policy_pdf])

        def ask(question: str) -> Answer:
            return engine.answerer.stream(question, engine.search(question)).result()

        leave = "How many days of paid annual leave do full-time employees get?"
        assert ask(leave).grounded and "20 days" in ask(leave).text
        assert engine.covered(leave, engine.search(leave))
        refused = ask("Am I allowed to bring my dog to the office?")
        assert not refused.grounded and "“dog”" in refused.text and refused.citations == []
        assert refused.coverage is not None and not refused.coverage.covered
