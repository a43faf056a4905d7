"""Fine-tuning vs retrieval, scored on a QA file (`python -m rag_core compare`, the Evaluate page).

Every question is answered by up to five arms: the base model without context and with retrieval
(RAG), the fine-tuned model (a LoRA adapter from `python -m rag_core finetune`) without context and with
retrieval, and the extractive answerer, the baseline that needs no weights. Per arm: answer-contains on
answerable questions (the answer has one of the expected phrases and is not a refusal), refusals of
answerable and of uncovered questions, and latency; per question, every arm's answer side by side.

How refusals are counted: an arm with retrieval refuses as `ask` does (the coverage judge finds the
passages do not answer, and no model is asked; a model whose window could hold none of the passages
answered without them, which is scored like any answer); an arm without context can only refuse in words, so
its answer counts as a refusal when it is empty or says it does not know (`REFUSAL_WORDS`).

Latency is the answer's time; with retrieval it includes the question's retrieval (timed once per
question, the same for every arm that uses it).

An adapter learns the documents as they were when it was trained: `drift` lists what was added,
updated or removed since, known to retrieval, unknown to the fine-tuned model.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from rag_core.evaluation import QAItem
from rag_core.lora import FinetuneRecord, read_record
from rag_core.types import Answer, DocumentInfo, Hit, json_of

if TYPE_CHECKING:
    from rag_core.engine import Engine

REFUSAL_WORDS = re.compile(
    r"could not find|can ?not find|couldn't find|do(?:es)? not (?:cover|know|have|say|mention)|don't know|"
    r"not (?:sure|able to)|cannot answer|can't answer|no information",
    re.IGNORECASE,
)

AnswerFn = Callable[[int, int, str], None]  # progress: (answers done, answers in all, arm name)


ArmName = Literal[
    "base, no context",
    "base + retrieval",
    "fine-tuned, no context",
    "fine-tuned + retrieval",
    "extractive + retrieval",
]


@dataclass(frozen=True)
class Arm:
    name: ArmName
    generator: str  # the generator spec
    context: bool  # with retrieved passages (RAG) or without


@dataclass(frozen=True)
class ArmScore:
    arm: ArmName
    generator: str
    context: bool
    answer_contains: float | None  # None: no answerable questions
    refused_answerable: float | None
    refused_uncovered: float | None  # None: no uncovered questions
    latency_p50_ms: float
    latency_p95_ms: float


@dataclass(frozen=True)
class QuestionAnswers:
    id: str
    question: str
    answerable: bool
    expected: list[str]
    answers: dict[ArmName, str]
    answer_ok: dict[ArmName, bool | None]  # has the fact (None: an uncovered question)
    refused: dict[ArmName, bool]


@dataclass(frozen=True)
class Drift:
    """The knowledge base's documents now against those an adapter was trained on."""

    trained_generation: int
    generation: int
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def note(self) -> str:
        """In words, for the table's reader."""
        if not self.changed:
            return (
                "The documents are as they were when the adapter was trained "
                f"(knowledge base generation {self.trained_generation}; now {self.generation})."
            )
        parts = [
            f"{label}: {', '.join(names)}"
            for label, names in (("added", self.added), ("updated", self.updated), ("removed", self.removed))
            if names
        ]
        return (
            f"Since the adapter was trained (generation {self.trained_generation}, now {self.generation}), "
            f"documents were {'; '.join(parts)}. Retrieval reads them as they are now; the fine-tuned "
            "model only knows them as they were."
        )


@dataclass(frozen=True)
class CompareReport:
    arms: list[ArmScore]
    questions: list[QuestionAnswers]
    drift: Drift | None  # None: no adapter, or one without a record

    def to_json(self) -> dict[str, object]:
        out = json_of(self)
        out["drift_note"] = self.drift.note() if self.drift is not None else None
        return out


def arms_for(base: str | None, finetuned: str | None) -> list[Arm]:
    """The arms to run: each model without context and with retrieval, then extractive."""
    arms: list[Arm] = []
    if base:
        arms += [Arm("base, no context", base, False), Arm("base + retrieval", base, True)]
    if finetuned:
        arms += [Arm("fine-tuned, no context", finetuned, False), Arm("fine-tuned + retrieval", finetuned, True)]
    return [*arms, Arm("extractive + retrieval", "extractive", True)]


def is_refusal(text: str) -> bool:
    """Whether an answer given without context declines rather than answers.

    >>> is_refusal("I don't know the company's policy on that."), is_refusal("You get 25 days.")
    (True, False)
    """
    return not text.strip() or bool(REFUSAL_WORDS.search(text))


def drift(record: FinetuneRecord, documents: Sequence[DocumentInfo], generation: int) -> Drift:
    trained = {d.name: d.sha256 for d in record.documents}
    now = {d.name: d.sha256 for d in documents}
    return Drift(
        trained_generation=record.generation,
        generation=generation,
        added=sorted(n for n in now if n not in trained),
        updated=sorted(n for n in now if n in trained and trained[n] != now[n]),
        removed=sorted(n for n in trained if n not in now),
    )


def compare(
    engine: Engine,
    items: Sequence[QAItem],
    base: str | None,
    finetuned: str | None = None,
    *,
    k: int | None = None,
    on_answer: AnswerFn | None = None,
) -> CompareReport:
    """Answer every question with every arm and score them. A model that cannot be loaded is an error
    (ValueError naming it), never a silent fallback to the extractive answerer."""
    arms = arms_for(base, finetuned)
    for arm in arms:
        _, warning = engine.answerer.generator(arm.generator)
        if warning:
            raise ValueError(f"{arm.generator}: {warning.split('; meanwhile')[0]}")
    retrieved: list[tuple[list[Hit], float, str]] = []  # hits, seconds, the query coverage is judged on
    for q in items:
        t = time.perf_counter()
        hits = engine.searcher.search(q.question, k=k)
        retrieved.append((hits, time.perf_counter() - t, engine.searcher.topic(q.question)))
    texts: dict[ArmName, list[str]] = {a.name: [] for a in arms}
    refused: dict[ArmName, list[bool]] = {a.name: [] for a in arms}
    seconds: dict[ArmName, list[float]] = {a.name: [] for a in arms}
    done, total = 0, len(arms) * len(items)
    for arm in arms:
        for q, (hits, search_s, topic) in zip(items, retrieved, strict=True):
            t = time.perf_counter()
            reply = engine.answerer.stream(
                q.question, hits if arm.context else None, arm.generator, query=topic
            ).result()
            seconds[arm.name].append(time.perf_counter() - t + (search_s if arm.context else 0.0))
            texts[arm.name].append(reply.text)
            refused[arm.name].append(_refused(reply, hits) if arm.context else is_refusal(reply.text))
            done += 1
            if on_answer is not None:
                on_answer(done, total, arm.name)
    questions = [
        QuestionAnswers(
            id=q.id,
            question=q.question,
            answerable=q.answerable,
            expected=list(q.answer_contains),
            answers={a.name: texts[a.name][i] for a in arms},
            answer_ok={a.name: _has_fact(q, texts[a.name][i], refused[a.name][i]) for a in arms},
            refused={a.name: refused[a.name][i] for a in arms},
        )
        for i, q in enumerate(items)
    ]
    return CompareReport([_score(a, questions, seconds[a.name]) for a in arms], questions, _drift_of(engine, finetuned))


def _refused(reply: Answer, hits: list[Hit]) -> bool:
    """With retrieval, a refusal is the coverage judge's (or nothing retrieved), as `ask` decides. A model
    whose window held none of the passages answered without them: that is scored, not counted a refusal."""
    return not hits or (reply.coverage is not None and not reply.coverage.covered)


def _has_fact(q: QAItem, text: str, was_refused: bool) -> bool | None:
    if not q.answerable:
        return None
    return not was_refused and any(a.lower() in text.lower() for a in q.answer_contains)


def _score(arm: Arm, questions: list[QuestionAnswers], seconds: list[float]) -> ArmScore:
    answerable = [q for q in questions if q.answerable]
    uncovered = [q for q in questions if not q.answerable]

    def share(rows: list[QuestionAnswers], test: Callable[[QuestionAnswers], bool]) -> float | None:
        return round(sum(1 for r in rows if test(r)) / len(rows), 4) if rows else None

    ms = np.asarray(seconds) * 1000 if seconds else np.zeros(1)
    return ArmScore(
        arm=arm.name,
        generator=arm.generator,
        context=arm.context,
        answer_contains=share(answerable, lambda q: bool(q.answer_ok[arm.name])),
        refused_answerable=share(answerable, lambda q: q.refused[arm.name]),
        refused_uncovered=share(uncovered, lambda q: q.refused[arm.name]),
        latency_p50_ms=round(float(np.percentile(ms, 50)), 1),
        latency_p95_ms=round(float(np.percentile(ms, 95)), 1),
    )


def _drift_of(engine: Engine, finetuned: str | None) -> Drift | None:
    if not finetuned:
        return None
    record = read_record(Path(finetuned.removeprefix("hf:")))
    if record is None:
        return None
    return drift(record, engine.documents(), engine.store.generation())


def summary_rows(report: CompareReport) -> list[dict[str, object]]:
    """One row per arm, for a table."""
    return [
        {
            "arm": a.arm,
            "generator": a.generator,
            "answer has the fact": a.answer_contains,
            "answerable refused": a.refused_answerable,
            "uncovered refused": a.refused_uncovered,
            "latency p50 (ms)": a.latency_p50_ms,
            "latency p95 (ms)": a.latency_p95_ms,
        }
        for a in report.arms
    ]


def answer_rows(report: CompareReport) -> list[dict[str, object]]:
    """One row per question with every arm's answer (✓ when it has the fact), for a side-by-side table."""
    rows: list[dict[str, object]] = []
    for q in report.questions:
        row: dict[str, object] = {
            "id": q.id,
            "question": q.question,
            "expected": " / ".join(q.expected) or "(not covered)",
        }
        for arm, text in q.answers.items():
            mark = "✓ " if q.answer_ok[arm] else ("refused: " if q.refused[arm] else "")
            row[arm] = mark + " ".join(text.split())
        rows.append(row)
    return rows
