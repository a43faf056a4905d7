"""Refusals on the dev set: the coverage model (rag_core.answer.coverage) against the cosine threshold.

One knowledge base as in eval_dev.py (the dev documents with ../shared/corpus/hr and corpus/scale).
For every dev question: the default retrieval, the answer the bot would give if it answered, and the
coverage signals (best sentence cosine, best passage cosine, share of unknown words). Then, by 5-fold
cross-validation (folds fixed by question id, as in eval_dev.py), on the 4 training folds:

- the cosine threshold alone: the highest one that refuses at most 5% of answerable questions;
- the coverage model: fitted (logistic, classes weighed equally), then the highest confidence
  threshold that refuses at most 5% of the training folds' answerable questions;

each scored on the held-out fold; the table gives the held-out averages. Finally the model and its
threshold fitted on the whole dev set (the shipped defaults come from this line) and, as a transfer
check, the visible set scored with them (it was never used for fitting).

    python benchmarks/eval_refusal.py [--shared ../shared] [--work benchmarks/out]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag_core.answer.coverage import CoverageModel, fit_model  # noqa: E402
from rag_core.config import Settings  # noqa: E402
from rag_core.embedding import shared_embedder  # noqa: E402
from rag_core.engine import Engine  # noqa: E402
from rag_core.evaluation import QAItem, load_qa  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from eval_dev import FOLDS, build, chunking_key, corpus, fold_of  # noqa: E402

MAX_REFUSED = 0.05


@dataclass(frozen=True)
class Row:
    answerable: bool
    has_fact: bool  # the answer, if given, contains one of answer_contains
    x: tuple[float, float, float]  # best sentence, best passage, unknown share


def rows_for(engine: Engine, items: Sequence[QAItem]) -> list[Row]:
    out: list[Row] = []
    hits = engine.search([q.question for q in items])
    for q, hs in zip(items, hits, strict=True):
        text = engine.answerer.stream(q.question, hs, refuse=False).result().text.lower()
        c = engine.answerer.judge.judge(engine.searcher.topic(q.question), hs)
        out.append(
            Row(
                q.answerable,
                any(a.lower() in text for a in q.answer_contains),
                (c.best_sentence, c.best_passage, c.unknown_share),
            )
        )
    return out


def threshold(scores: Sequence[float]) -> float:
    """The highest threshold that refuses (score < t) at most MAX_REFUSED of these answerable scores."""
    s = sorted(scores)
    return s[int(np.floor(MAX_REFUSED * len(s)))]


def rates(rows: Sequence[Row], scores: Sequence[float], t: float) -> tuple[float, float, float]:
    """(answer has the fact, answerable refused, unanswerable refused) when refusing below t."""
    a = [(r, s) for r, s in zip(rows, scores, strict=True) if r.answerable]
    u = [s for r, s in zip(rows, scores, strict=True) if not r.answerable]
    return (
        sum(1 for r, s in a if r.has_fact and s >= t) / max(1, len(a)),
        sum(1 for _, s in a if s < t) / max(1, len(a)),
        sum(1 for s in u if s < t) / max(1, len(u)),
    )


def confidences(model: CoverageModel, rows: Sequence[Row]) -> list[float]:
    return [model.confidence(*r.x) for r in rows]


# The refusal rules compared: which of the three signals the coverage model reads (the others get
# weight 0). One signal alone is a plain threshold on it.
RULES: dict[str, tuple[int, ...]] = {
    "passage cosine": (1,),
    "sentence cosine": (0,),
    "sentence + unknown words": (0, 2),
    "all three signals": (0, 1, 2),
}


def fit_rule(columns: tuple[int, ...], rows: Sequence[Row]) -> tuple[CoverageModel, float]:
    """The coverage model on `columns` fitted on `rows`, and its threshold (<= 5% answerable refused)."""
    x = np.array([[v if c in columns else 0.0 for c, v in enumerate(r.x)] for r in rows])
    model = fit_model(x, [r.answerable for r in rows])
    scores = confidences(model, rows)
    return model, threshold([sc for r, sc in zip(rows, scores, strict=True) if r.answerable])


def held_out(columns: tuple[int, ...], train: Sequence[Row], test: Sequence[Row]) -> tuple[float, float, float]:
    model, t = fit_rule(columns, train)
    return rates(test, confidences(model, test), t)


def inner_score(columns: tuple[int, ...], rows: Sequence[Row]) -> float:
    """A rule's cross-validated score on these rows alone (4 inner folds): uncovered refused minus the
    answerable refused beyond 5%, so that a rule cannot win by refusing more of everything."""
    scores = []
    for f in range(4):
        train = [r for i, r in enumerate(rows) if i % 4 != f]
        test = [r for i, r in enumerate(rows) if i % 4 == f]
        _, ra, ru = held_out(columns, train, test)
        scores.append(ru - 4 * max(0.0, ra - MAX_REFUSED))
    return statistics.mean(scores)


def cross_validate(items: Sequence[QAItem], rows: Sequence[Row]) -> dict[str, tuple[float, float, float, list[str]]]:
    """Held-out rates per fixed rule, and for the rule chosen on each fold's training folds (nested)."""
    out: dict[str, tuple[float, float, float, list[str]]] = {}
    folds = [
        ([r for r, q in zip(rows, items, strict=True) if fold_of(q) != f],
         [r for r, q in zip(rows, items, strict=True) if fold_of(q) == f])
        for f in range(FOLDS)
    ]  # fmt: skip
    for name, columns in RULES.items():
        held = [held_out(columns, train, test) for train, test in folds]
        out[name] = (*(statistics.mean(h[i] for h in held) for i in range(3)), [])  # type: ignore[assignment]
    held, chosen = [], []
    for train, test in folds:
        best = max(RULES, key=lambda name: inner_score(RULES[name], train))
        chosen.append(best)
        held.append(held_out(RULES[best], train, test))
    out["rule chosen on the training folds"] = (*(statistics.mean(h[i] for h in held) for i in range(3)), chosen)  # type: ignore[assignment]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out")
    args = ap.parse_args()
    dev = load_qa(args.shared / "eval" / "dev" / "qa.jsonl")
    visible = load_qa(args.shared / "eval" / "qa.jsonl")
    settings = Settings(data_dir=args.work / f"devkb-context-10-{chunking_key(Settings())}")
    engine = Engine(settings, embedder=shared_embedder())
    build(engine, corpus(args.shared))
    dev_rows, visible_rows = rows_for(engine, dev), rows_for(engine, visible)

    print("| refusal rule | set | answer has the fact | answerable refused | unanswerable refused | chosen |")
    print("|---|---|---|---|---|---|")
    for name, (c, ra, ru, chosen) in cross_validate(dev, dev_rows).items():
        print(f"| {name}, 5-fold CV | dev held-out | {c:.3f} | {ra:.3f} | {ru:.3f} | {'; '.join(chosen)} |")
    best = max(RULES, key=lambda name: inner_score(RULES[name], dev_rows))
    model, t = fit_rule(RULES[best], dev_rows)
    for name, rows in (("dev (fitted on)", dev_rows), ("visible (transfer)", visible_rows)):
        c, ra, ru = rates(rows, confidences(model, rows), t)
        print(f"| {best}, fitted on all dev | {name} | {c:.3f} | {ra:.3f} | {ru:.3f} | |")
    shipped = engine.answerer.judge
    for name, rows in (("dev", dev_rows), ("visible", visible_rows)):
        scores = [
            s if r.x[1] >= shipped.min_score else 0.0
            for r, s in zip(rows, confidences(shipped.model, rows), strict=True)
        ]
        c, ra, ru = rates(rows, scores, shipped.min_coverage)
        print(f"| shipped defaults (min_coverage {shipped.min_coverage}) | {name} | {c:.3f} | {ra:.3f} | {ru:.3f} | |")
    w = model
    print(
        f"\nchosen on all dev: {best}; CoverageModel(w_sentence={w.w_sentence:.2f}, w_passage={w.w_passage:.2f}, "
        f"w_unknown={w.w_unknown:.2f}, bias={w.bias:.2f}); min_coverage {t:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
