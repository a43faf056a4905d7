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
from eval_dev import FOLDS, build, corpus, fold_of  # noqa: E402

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


def cross_validate(items: Sequence[QAItem], rows: Sequence[Row]) -> dict[str, tuple[float, float, float, list[float]]]:
    out: dict[str, tuple[float, float, float, list[float]]] = {}
    for name in ("cosine threshold", "coverage model"):
        held: list[tuple[float, float, float]] = []
        chosen: list[float] = []
        for f in range(FOLDS):
            train = [r for r, q in zip(rows, items, strict=True) if fold_of(q) != f]
            test = [r for r, q in zip(rows, items, strict=True) if fold_of(q) == f]
            if name == "cosine threshold":
                score_train, score_test = [r.x[1] for r in train], [r.x[1] for r in test]
            else:
                model = fit_model(np.array([r.x for r in train]), [r.answerable for r in train])
                score_train, score_test = confidences(model, train), confidences(model, test)
            t = threshold([s for r, s in zip(train, score_train, strict=True) if r.answerable])
            chosen.append(round(t, 3))
            held.append(rates(test, score_test, t))
        c, ra, ru = (statistics.mean(h[i] for h in held) for i in range(3))
        out[name] = (c, ra, ru, chosen)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out")
    args = ap.parse_args()
    dev = load_qa(args.shared / "eval" / "dev" / "qa.jsonl")
    visible = load_qa(args.shared / "eval" / "qa.jsonl")
    settings = Settings(data_dir=args.work / "devkb-context-1")
    engine = Engine(settings, embedder=shared_embedder())
    build(engine, corpus(args.shared))
    dev_rows, visible_rows = rows_for(engine, dev), rows_for(engine, visible)

    print("| refusal rule | set | answer has the fact | answerable refused | unanswerable refused | thresholds |")
    print("|---|---|---|---|---|---|")
    for name, (c, ra, ru, chosen) in cross_validate(dev, dev_rows).items():
        print(f"| {name}, 5-fold CV | dev held-out | {c:.3f} | {ra:.3f} | {ru:.3f} | {chosen} |")
    tc = threshold([r.x[1] for r in dev_rows if r.answerable])
    for name, rows in (("dev (fitted on)", dev_rows), ("visible (transfer)", visible_rows)):
        c, ra, ru = rates(rows, [r.x[1] for r in rows], tc)
        print(f"| cosine threshold fitted on all dev | {name} | {c:.3f} | {ra:.3f} | {ru:.3f} | {tc:.3f} |")
    model = fit_model(np.array([r.x for r in dev_rows]), [r.answerable for r in dev_rows])
    t = threshold([s for r, s in zip(dev_rows, confidences(model, dev_rows), strict=True) if r.answerable])
    for name, rows in (("dev (fitted on)", dev_rows), ("visible (transfer)", visible_rows)):
        c, ra, ru = rates(rows, confidences(model, rows), t)
        print(f"| coverage model fitted on all dev | {name} | {c:.3f} | {ra:.3f} | {ru:.3f} | {t:.3f} |")
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
        f"\nfitted on all dev: CoverageModel(w_sentence={w.w_sentence:.2f}, w_passage={w.w_passage:.2f}, "
        f"w_unknown={w.w_unknown:.2f}, bias={w.bias:.2f}); min_coverage {t:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
