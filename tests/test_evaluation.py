"""rag_core.evaluation: QA parsing and hand-computed metrics."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rag_core.evaluation import QAFormatError, QAItem, evaluate, load_qa
from rag_core.types import Answer, Hit


def _hits(*docs_pages: tuple[str, int]) -> list[Hit]:
    return [Hit(i + 1, 1.0 - i / 10, d, d, p, i, "t") for i, (d, p) in enumerate(docs_pages)]


class TestEvaluate:
    def test_hand_computed_metrics(self) -> None:
        items = [
            QAItem("q1", "a?", "a.pdf", [1]),  # rank 1
            QAItem("q2", "b?", "b.pdf", [2, 3]),  # rank 3
            QAItem("q3", "c?", "c.pdf", [9]),  # miss
            QAItem("q4", "d?", "d.pdf", [1]),  # rank 5
            QAItem("u1", "none?", None, []),  # unanswerable: left out
        ]
        ranked = {
            "a?": _hits(("a.pdf", 1), ("x", 1)),
            "b?": _hits(("x", 1), ("b.pdf", 1), ("b.pdf", 3)),
            "c?": _hits(("c.pdf", 8)),
            "d?": _hits(("x", 1), ("x", 2), ("x", 3), ("x", 4), ("d.pdf", 1)),
            "none?": _hits(("x", 1)),  # top score 1.0: above a 0.5 threshold, so not refused
        }
        report = evaluate(items, lambda qs: [ranked[q] for q in qs], k=5)
        assert report.refused_unanswerable is None  # no threshold given

        def above(t: float) -> Callable[[str, list[Hit]], bool]:
            return lambda question, hits: max(h.score for h in hits) >= t

        assert evaluate(items, lambda qs: [ranked[q] for q in qs], covered=above(0.5)).refused_unanswerable == 0.0
        assert evaluate(items, lambda qs: [ranked[q] for q in qs], covered=above(1.5)).refused_unanswerable == 1.0
        assert report.n == 4
        assert report.hit_at == {1: 0.25, 3: 0.5, 5: 0.75}
        assert report.mrr == pytest.approx((1 + 1 / 3 + 0 + 1 / 5) / 4)
        assert [q.hit_rank for q in report.questions] == [1, 3, None, 5, None]  # every question has a row
        assert [q.id for q in report.misses] == ["q3"]  # the unanswerable one is no miss
        assert set(report.to_json()) >= {"n", "hit@1", "hit@3", "hit@5", "mrr", "refused_unanswerable", "questions"}

    def test_answers_scored_as_ask_returns_them(self) -> None:
        items = [
            QAItem("q1", "a?", "a.pdf", [1], ["20 days"]),
            QAItem("q2", "b?", "b.pdf", [1], ["ten"]),
            QAItem("q3", "c?", "c.pdf", [1], ["VPN"]),
            QAItem("u1", "none?", None, []),
            QAItem("u2", "moon?", None, []),
        ]
        replies = {  # (grounded, text): q1 right, q2 wrong fact, q3 refused; u1 refused, u2 guessed
            "a?": (True, "You get 20 Days [1]."),
            "b?": (True, "Five [1]."),
            "c?": (False, "I could not find this."),
            "none?": (False, "I could not find this."),
            "moon?": (True, "The moon [1]."),
        }

        def answer(question: str, hits: list[Hit]) -> Answer:
            grounded, text = replies[question]
            return Answer(question, text, "test", grounded, [], hits)

        report = evaluate(items, lambda qs: [_hits(("x", 1)) for _ in qs], answer=answer)
        assert report.answer_contains == pytest.approx(1 / 3) and report.refused_answerable == pytest.approx(1 / 3)
        assert report.refused_unanswerable == 0.5
        assert [q.answer_ok for q in report.questions] == [True, False, False, None, None]
        assert report.to_json()["answer_contains"] == pytest.approx(1 / 3)


class TestLoadQA:
    def test_reads_shared_format(self, tmp_path: Path) -> None:
        p = tmp_path / "qa.jsonl"
        p.write_text(
            '{"id": "v1", "question": "Q?", "document": "a.pdf", "pages": [4], "answer_contains": ["x"], '
            '"kind": "fact"}\n\n{"id": "v2", "question": "U?", "document": null, "pages": [], "kind": "unanswerable"}\n'
        )
        items = load_qa(p)
        assert [i.id for i in items] == ["v1", "v2"]
        assert items[0].answerable and not items[1].answerable

    def test_bad_line_named(self, tmp_path: Path) -> None:
        p = tmp_path / "qa.jsonl"
        p.write_text('{"question": "ok", "document": "a", "pages": [1]}\nnot json\n')
        with pytest.raises(QAFormatError, match=r"qa.jsonl:2"):
            load_qa(p)
