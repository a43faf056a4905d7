"""Retrieval evaluation on a QA file: hit@1/3/5 and MRR, plus one row per question.

QA format (JSON Lines, as in the shared eval set): `{"id", "question", "document", "pages",
"answer_contains", "kind"}`; `document: null` and `pages: []` mark a question no document answers.
Those are left out of hit@k and MRR. A hit at k: one of the top k passages is from `document` on one of
`pages`. MRR: mean of 1/rank of the first hit within the top k (0 when none).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rag_core.search import rank_of_first
from rag_core.types import Answer, Hit, Mode, QuestionKind, json_key, json_of

SAMPLE_QA = Path(__file__).resolve().parent / "samples" / "sample_qa.jsonl"


class QAFormatError(ValueError):
    pass


@dataclass(frozen=True)
class QAItem:
    id: str
    question: str
    document: str | None
    pages: list[int]
    answer_contains: list[str] = field(default_factory=list)
    kind: QuestionKind = "fact"

    @property
    def answerable(self) -> bool:
        return bool(self.document) and bool(self.pages)


def missing_documents(items: Sequence[QAItem], names: Sequence[str]) -> list[str]:
    """The documents the questions expect that are not among `names` (the knowledge base's), sorted: a
    question about a missing document can only miss, so the score would say nothing about retrieval.

    >>> q = QAItem("1", "Leave?", "handbook.pdf", [3])
    >>> missing_documents([q, QAItem("2", "Pets?", None, [])], ["policy.pdf"])
    ['handbook.pdf']
    """
    have = set(names)
    return sorted({q.document for q in items if q.document and q.document not in have})


def load_qa(path: str | Path) -> list[QAItem]:
    """Read a QA file (JSONL, or CSV by its .csv suffix); a bad line raises `QAFormatError`."""
    path = Path(path)
    return parse_qa(path.read_bytes(), path.name)


def parse_qa(data: bytes, name: str) -> list[QAItem]:
    """QA items from JSONL (the shared eval format) or CSV with columns question, document, page.

    In CSV, `page` may list several pages separated by ';' or ','; an empty document marks a question
    no document answers.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise QAFormatError(f"{name}: not UTF-8 text ({e})") from e
    items = _parse_csv(text, name) if name.lower().endswith(".csv") else _parse_jsonl(text, name)
    if not items:
        raise QAFormatError(f"{name}: no questions found")
    return items


def _parse_jsonl(text: str, name: str) -> list[QAItem]:
    items: list[QAItem] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            items.append(
                QAItem(
                    id=str(obj.get("id", f"q{n}")),
                    question=str(obj["question"]),
                    document=obj.get("document"),
                    pages=[int(p) for p in obj.get("pages") or []],
                    answer_contains=[str(a) for a in obj.get("answer_contains") or []],
                    kind=str(obj.get("kind", "fact")),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise QAFormatError(
                f"{name}:{n}: not a QA line ({type(e).__name__}: {e}); expected JSON with at least "
                '"question", "document" and "pages"'
            ) from e
    return items


def _parse_csv(text: str, name: str) -> list[QAItem]:
    reader = csv.DictReader(io.StringIO(text))
    fields = {f.strip().lower() for f in reader.fieldnames or []}
    if not {"question", "document"} <= fields or not fields & {"page", "pages"}:
        raise QAFormatError(f"{name}: a CSV needs the columns question, document, page; found {sorted(fields)}")
    items: list[QAItem] = []
    for n, raw in enumerate(reader, 2):
        row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k}
        try:
            pages = [int(p) for p in re.split(r"[;,\s]+", row.get("page") or row.get("pages") or "") if p]
        except ValueError as e:
            raise QAFormatError(f"{name}:{n}: page must be a number or numbers separated by ';' ({e})") from e
        if not row.get("question"):
            raise QAFormatError(f"{name}:{n}: empty question")
        document = row.get("document") or None
        items.append(QAItem(row.get("id") or f"q{n - 1}", row["question"], document, pages if document else []))
    return items


@dataclass(frozen=True)
class QuestionResult:
    """How retrieval (and, when scored, the answer) did on one question."""

    id: str
    question: str
    kind: QuestionKind
    document: str | None
    pages: list[int]
    hit_rank: int | None  # rank of the first passage from the right document and page; None = missed
    top_document: str | None
    top_page: int | None
    top_score: float | None
    grounded: bool | None = None  # did the bot answer (True) or say the documents do not cover it?
    answer: str | None = None  # with answers scored
    answer_ok: bool | None = None  # answerable, and the answer contains one of the expected phrases

    @property
    def answerable(self) -> bool:
        return bool(self.document) and bool(self.pages)


@dataclass(frozen=True)
class EvalReport:
    n: int  # answerable questions
    hit_at_1: float = field(metadata=json_key("hit@1"))
    hit_at_3: float = field(metadata=json_key("hit@3"))
    hit_at_5: float = field(metadata=json_key("hit@5"))
    mrr: float
    refused_unanswerable: float | None
    questions: list[QuestionResult]
    answer_contains: float | None = None  # share of answerable questions whose answer has the fact
    refused_answerable: float | None = None  # share of answerable questions the bot declined

    @property
    def hit_at(self) -> dict[int, float]:
        return {1: self.hit_at_1, 3: self.hit_at_3, 5: self.hit_at_5}

    @property
    def misses(self) -> list[QuestionResult]:
        return [q for q in self.questions if q.answerable and q.hit_rank is None]

    def to_json(self) -> dict[str, object]:
        return json_of(self)


# A question and its hits -> the answer the bot would give (grounded or a refusal).
AnswerFn = Callable[[str, list[Hit]], Answer]


def evaluate(
    items: Sequence[QAItem],
    search: Callable[[list[str]], list[list[Hit]]],
    k: int = 5,
    covered: Callable[[str, list[Hit]], bool] | None = None,
    answer: AnswerFn | None = None,
) -> EvalReport:
    """Score `search` (questions -> hits, at least max(k, 5) each): hit@k and MRR on the answerable items.

    Refusals: with `answer`, each question is answered from its hits and a refusal is an answer that is
    not grounded, exactly what `ask` returns; answer-contains is then the share of answerable questions
    whose answer contains one of `answer_contains` (case-insensitive). Without it, with `covered` (the
    refusal decision `ask` makes before answering), a question counts as refused when it is not covered.
    """
    all_hits = search([q.question for q in items]) if items else []
    rows: list[QuestionResult] = []
    for q, hits in zip(items, all_hits, strict=True):
        rank = rank_of_first(hits, q.document or "", q.pages) if q.answerable else None
        top = hits[0] if hits else None
        grounded: bool | None = None
        text: str | None = None
        ok: bool | None = None
        if answer is not None:
            reply = answer(q.question, hits)
            grounded, text = reply.grounded, reply.text
            if q.answerable:
                ok = reply.grounded and any(a.lower() in reply.text.lower() for a in q.answer_contains)
        elif covered is not None:
            grounded = bool(hits) and covered(q.question, hits)
        rows.append(
            QuestionResult(
                id=q.id,
                question=q.question,
                kind=q.kind,
                document=q.document,
                pages=q.pages,
                hit_rank=rank,
                top_document=top.document if top else None,
                top_page=top.page if top else None,
                top_score=round(top.score, 4) if top else None,
                grounded=grounded,
                answer=text,
                answer_ok=ok,
            )
        )
    answerable = [r for r in rows if r.answerable]
    unanswerable = [r for r in rows if not r.answerable]
    n = len(answerable)

    def share(rows: list[QuestionResult], test: Callable[[QuestionResult], bool]) -> float | None:
        return sum(1 for r in rows if test(r)) / len(rows) if rows and rows[0].grounded is not None else None

    def hit_at(cut: int) -> float:
        return sum(1 for r in answerable if r.hit_rank is not None and r.hit_rank <= cut) / n if n else 0.0

    mrr = sum(1.0 / r.hit_rank for r in answerable if r.hit_rank is not None and r.hit_rank <= k) / n if n else 0.0
    return EvalReport(
        n=n,
        hit_at_1=hit_at(1),
        hit_at_3=hit_at(3),
        hit_at_5=hit_at(5),
        mrr=mrr,
        refused_unanswerable=share(unanswerable, lambda r: r.grounded is False),
        questions=rows,
        answer_contains=share(answerable, lambda r: bool(r.answer_ok)) if answer is not None else None,
        refused_answerable=share(answerable, lambda r: r.grounded is False),
    )


def summary_rows(reports: Mapping[Mode, EvalReport]) -> list[dict[str, object]]:
    """One row per retrieval mode: questions, hit@1/3/5, MRR and refusals, rounded for reading."""
    rows: list[dict[str, object]] = [
        {
            "mode": mode,
            "questions": r.n,
            "hit@1": round(r.hit_at_1, 3),
            "hit@3": round(r.hit_at_3, 3),
            "hit@5": round(r.hit_at_5, 3),
            "MRR": round(r.mrr, 3),
            "refused unanswerable": _rounded(r.refused_unanswerable),
            "refused answerable": _rounded(r.refused_answerable),
            "answer has the fact": _rounded(r.answer_contains),
        }
        for mode, r in reports.items()
    ]
    for column in ("refused answerable", "answer has the fact"):  # only where answers were scored
        if all(row[column] is None for row in rows):
            for row in rows:
                del row[column]
    return rows


def miss_rows(report: EvalReport) -> list[dict[str, object]]:
    """The questions whose page was not in the top k, with what was retrieved instead."""
    return [
        {
            "question": q.question,
            "expected": f"{q.document} p. {', '.join(str(p) for p in q.pages)}",
            "retrieved instead (top hit)": f"{q.top_document} p. {q.top_page}",
            "score": q.top_score,
        }
        for q in report.misses
    ]


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
