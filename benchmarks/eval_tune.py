"""Retriever fine-tuning (`python -m rag_core tune`) on the dev set, cross-validated against the base.

One knowledge base, as in eval_dev.py: ../shared/eval/dev/docs + corpus/hr + corpus/scale (~3,700
chunks), built with the bundled MiniLM. For each of eval_dev's 5 folds (`fold_of`, by question id):

1. tune MiniLM on the other folds' answerable questions (gold passages and hard negatives mined in that
   knowledge base, exactly as `tune` does);
2. re-embed the knowledge base with the tuned model (`ingest --embedder DIR` into a new KB);
3. score the fold's questions, and the visible set (../shared/eval/qa.jsonl, never trained on), with
   dense retrieval and with the default hybrid retrieval, answers included.

The base embedder is scored on the same folds in the same run. Held-out figures are the mean over the
5 folds; the visible set's "tuned" figure is the mean over the 5 fold models. Nothing is chosen on the
held-out questions: the options are tune's defaults unless given here, and the same for every fold.

    python benchmarks/eval_tune.py [--shared ../shared] [--work benchmarks/out] [--epochs N] [--batch-size N]

Cached under --work: the base KB (the one eval_dev.py builds and reuses), and per fold the tuned model
and its KB, kept while the fold's questions, the options and the base KB's generation are unchanged.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from eval_dev import FOLDS, build, chunking_key, corpus, fold_of  # noqa: E402

from rag_core.config import Settings  # noqa: E402
from rag_core.embedding import shared_embedder  # noqa: E402
from rag_core.engine import Engine  # noqa: E402
from rag_core.evaluation import EvalReport, QAItem, load_qa  # noqa: E402
from rag_core.tune import RECORD_NAME, TuneOptions, mine_pairs, train  # noqa: E402
from rag_core.types import Mode  # noqa: E402

MODES: tuple[Mode, ...] = ("dense", "hybrid")


@dataclass
class Scores:
    """hit@5, MRR and (hybrid only) the answer figures of one embedder on one question set."""

    hit5: float
    mrr: float
    contains: float | None
    refused_answerable: float | None
    refused_unanswerable: float | None
    ranks: dict[str, int | None]  # question id -> rank of the first passage on the right page, within 5


def scores(engine: Engine, items: list[QAItem]) -> dict[Mode, Scores]:
    """Dense (retrieval only) and hybrid, the default, with every question answered as `ask` would."""
    reports: dict[Mode, EvalReport] = engine.evaluate(items, ["dense"], k=5)
    reports |= engine.evaluate(items, ["hybrid"], k=5, answers=True)
    return {
        m: Scores(
            r.hit_at_5,
            r.mrr,
            r.answer_contains,
            r.refused_answerable if m == "hybrid" else None,
            r.refused_unanswerable if m == "hybrid" else None,
            {q.id: q.hit_rank for q in r.questions if q.answerable},
        )
        for m, r in reports.items()
    }


def seen_split(
    dev: list[QAItem], base_folds: list[dict[Mode, Scores]], tuned_folds: list[dict[Mode, Scores]]
) -> list[str]:
    """Held-out questions pooled over the folds, split by whether a training question of their fold had
    the same gold page: how much of the gain is the same passages asked about in other words."""
    groups: dict[bool, list[tuple[QAItem, int]]] = {True: [], False: []}
    for f in range(FOLDS):
        trained = {(q.document, p) for q in dev if fold_of(q) != f and q.answerable for p in q.pages}
        for q in dev:
            if fold_of(q) == f and q.answerable:
                groups[any((q.document, p) in trained for p in q.pages)].append((q, f))
    lines = []
    for seen, label in ((True, "gold page also a training question's"), (False, "gold page in no training question")):
        cells = []
        for mode in MODES:
            for folds in (base_folds, tuned_folds):
                ranks = [folds[f][mode].ranks[q.id] for q, f in groups[seen]]
                n = max(1, len(ranks))
                cells.append((sum(r is not None for r in ranks) / n, sum(1 / r for r in ranks if r is not None) / n))
        figures = " | ".join(f"{cells[i][j]:.3f} -> {cells[i + 1][j]:.3f}" for i in (0, 2) for j in (0, 1))
        lines.append(f"| {label} | {len(groups[seen])} | {figures} |")
    return lines


def tuned_fold(
    base: Engine, files: list[Path], train_items: list[QAItem], options: TuneOptions, folder: Path
) -> tuple[Engine, dict[str, object]]:
    """The fold's tuned model (trained now, or reused) and a KB embedded with it; and the tune record."""
    key = {
        "train": sorted(q.id for q in train_items),
        "options": vars(options),
        "base_generation": base.store.generation(),
    }
    stamp = folder / "key.json"
    if not stamp.exists() or json.loads(stamp.read_text()) != key:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        mined = mine_pairs(base.store, base.embedder, train_items, options.hard_negatives)
        began = time.monotonic()
        record = train(mined, folder / "model", options, on_step=_step)
        print(f"  trained on {record.pairs} pairs in {time.monotonic() - began:.0f} s", file=sys.stderr)
        stamp.write_text(json.dumps(key))
    record = json.loads((folder / "model" / RECORD_NAME).read_text())
    engine = Engine(Settings(data_dir=folder / "kb"), embedder_spec=str(folder / "model"))
    began = time.monotonic()
    build(engine, files)
    print(f"  knowledge base ready in {time.monotonic() - began:.0f} s", file=sys.stderr)
    return engine, record


def _step(step: int, total: int, loss: float) -> None:
    print(f"    step {step}/{total} loss {loss:.3f}", file=sys.stderr)


def mean(values: list[float | None]) -> str:
    present = [v for v in values if v is not None]
    return f"{statistics.mean(present):.3f}" if present else "-"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--hard-negatives", type=int, default=None)
    ap.add_argument("--learning-rate", type=float, default=None)
    args = ap.parse_args()
    given = {k: getattr(args, k) for k in ("epochs", "batch_size", "hard_negatives", "learning_rate")}
    options = TuneOptions(**{k: v for k, v in given.items() if v is not None})
    files = corpus(args.shared)
    dev = load_qa(args.shared / "eval" / "dev" / "qa.jsonl")
    visible = load_qa(args.shared / "eval" / "qa.jsonl")
    began = time.monotonic()

    base = Engine(
        Settings(data_dir=args.work / f"devkb-context-10-{chunking_key(Settings())}"), embedder=shared_embedder()
    )
    build(base, files)
    fold_items = [[q for q in dev if fold_of(q) == f] for f in range(FOLDS)]
    base_folds = [scores(base, items) for items in fold_items]
    base_visible = scores(base, visible)

    tuned_folds: list[dict[Mode, Scores]] = []
    tuned_visible: list[dict[Mode, Scores]] = []
    records: list[dict[str, object]] = []
    for f in range(FOLDS):
        print(f"fold {f + 1}/{FOLDS}", file=sys.stderr)
        train_items = [q for q in dev if fold_of(q) != f and q.answerable]
        engine, record = tuned_fold(base, files, train_items, options, args.work / "tune" / f"fold{f}")
        tuned_folds.append(scores(engine, fold_items[f]))
        tuned_visible.append(scores(engine, visible))
        records.append(record)

    print(
        f"Options: {options.epochs} epoch(s), batch {options.batch_size}, {options.hard_negatives} hard negative(s), "
        f"learning rate {options.learning_rate:g}; run took {time.monotonic() - began:.0f} s.\n"
    )
    columns = ["embedder", "retrieval", "set", "hit@5", "MRR", "answer has the fact", "answerable refused"]
    print("| " + " | ".join([*columns, "unanswerable refused"]) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for mode in MODES:
        for label, dev_rows, vis_rows in (
            ("base MiniLM (default)", base_folds, [base_visible]),
            ("tuned on the other 4 folds", tuned_folds, tuned_visible),
        ):
            for set_name, rows in (("dev held-out (5 folds)", dev_rows), ("visible", vis_rows)):
                s = [r[mode] for r in rows]
                print(
                    f"| {label} | {mode} | {set_name} | {mean([x.hit5 for x in s])} | {mean([x.mrr for x in s])} | "
                    f"{mean([x.contains for x in s])} | {mean([x.refused_answerable for x in s])} | "
                    f"{mean([x.refused_unanswerable for x in s])} |"
                )
    print()
    print("| held-out dev questions (pooled over folds) | n | dense hit@5 | dense MRR | hybrid hit@5 | hybrid MRR |")
    print("|---|---|---|---|---|---|")
    print("\n".join(seen_split(dev, base_folds, tuned_folds)))
    print()
    for mode in MODES:
        per_fold = "; ".join(
            f"{b[mode].hit5:.2f} -> {t[mode].hit5:.2f}" for b, t in zip(base_folds, tuned_folds, strict=True)
        )
        print(f"- {mode} hit@5 per fold, base -> tuned: {per_fold}")
    for f, record in enumerate(records):
        epoch_loss = ", ".join(f"{x:.3f}" for x in record["epoch_loss"])  # type: ignore[attr-defined]
        print(
            f"- fold {f + 1}: {record['pairs']} pairs ({record['pairs_with_answer_phrase']} gold passages with an "
            f"answer phrase), {record['steps']} steps in {record['seconds']} s, loss per epoch {epoch_loss}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
