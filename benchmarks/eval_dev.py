"""Retrieval, answers and refusals on the dev set, with settings chosen by cross-validation.

One knowledge base, as a company would have it: ../shared/eval/dev/docs together with
../shared/corpus/hr and ../shared/corpus/scale. Questions: ../shared/eval/dev/qa.jsonl (96 answerable,
24 not covered) and the visible set ../shared/eval/qa.jsonl. Printed in the same run:

- the plain script (800-character windows per page, MiniLM, exact inner-product search);
- PolicyPal without chunk context (the chunks as indexed before rag_core.structure) and with it;
- fusion settings (convex weight, candidate depth, RRF) chosen on 4 folds and scored on the 5th,
  averaged over the 5 held-out folds; the same for the refusal threshold;
- the defaults per question kind (table, number, ...) on the dev set, so a change aimed at one kind
  shows where it helps and what it costs the others.

Tuning is never on single questions: a setting is chosen by its score on the other folds.

    python benchmarks/eval_dev.py [--shared ../shared] [--work benchmarks/out]

The knowledge bases are kept under --work and reused while the chunking settings and the code that
reads and cuts the text (loaders, structure, tables, chunking) are the same: the directory name carries a
hash of both.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import faiss

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag_core.config import Settings  # noqa: E402
from rag_core.embedding import Embedder, shared_embedder  # noqa: E402
from rag_core.engine import Engine  # noqa: E402
from rag_core.evaluation import EvalReport, QAItem, load_qa  # noqa: E402
from rag_core.search import Fused, fuse, fuse_scores, search_vectors  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from eval_retrieval import readable_pages  # noqa: E402

FOLDS = 5
DEPTH = 100


def corpus(shared: Path) -> list[Path]:
    return [
        *sorted((shared / "eval" / "dev" / "docs").iterdir()),
        *sorted((shared / "corpus" / "hr").iterdir()),
        *sorted((shared / "corpus" / "scale").iterdir()),
    ]


def fold_of(item: QAItem) -> int:
    """A question's fold: fixed by its id, so every run and every setting sees the same split."""
    return sum(map(ord, item.id)) % FOLDS


@dataclass
class Scored:
    """Per question: the rank of the right page under one retrieval setting (None = not in the top 5)."""

    ranks: list[int | None]


def rank_metrics(items: Sequence[QAItem], ranks: Sequence[int | None]) -> tuple[float, float]:
    """(hit@5, MRR@5) over the answerable items."""
    pairs = [(q, r) for q, r in zip(items, ranks, strict=True) if q.answerable]
    if not pairs:
        return 0.0, 0.0
    hit5 = sum(1 for _, r in pairs if r is not None and r <= 5) / len(pairs)
    mrr = sum(1.0 / r for _, r in pairs if r is not None and r <= 5) / len(pairs)
    return hit5, mrr


def kind_rows(report: EvalReport) -> list[str]:
    """Table rows of hit@5, MRR and answer-contains per question kind (answerable questions only)."""
    rows = []
    answerable = [q for q in report.questions if q.answerable]
    for kind in sorted({q.kind for q in answerable}):
        qs = [q for q in answerable if q.kind == kind]
        hit5 = sum(1 for q in qs if q.hit_rank is not None and q.hit_rank <= 5) / len(qs)
        mrr = sum(1.0 / q.hit_rank for q in qs if q.hit_rank is not None and q.hit_rank <= 5) / len(qs)
        ok = sum(1 for q in qs if q.answer_ok) / len(qs)
        rows.append(f"|   kind {kind} ({len(qs)}) | dev | {hit5:.3f} | {mrr:.3f} | {ok:.3f} | - | - |")
    return rows


def chunking_key(settings: Settings) -> str:
    """A short hash of what decides the chunks: the chunking settings and the source of the modules that
    read, clean and cut the text. A knowledge base built by other code is never reused."""
    decides = (settings.chunk_tokens, settings.chunk_overlap, settings.chunk_context, settings.embed_context)
    digest = hashlib.sha256(repr(decides).encode())
    package = ROOT / "rag_core"
    for path in sorted([*(package / "loaders").glob("*.py"), *(package / n for n in CHUNKING_MODULES)]):
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


CHUNKING_MODULES = ("chunking.py", "structure.py", "tables.py", "ingest.py")


def build(engine: Engine, files: list[Path]) -> None:
    if engine.is_empty():
        results = engine.ingest_paths(files)
        failed = [r.file for r in results if r.status == "failed"]
        print(f"  ingested {len(results) - len(failed)} files into {engine.settings.data_dir}; failed: {failed}")


def retrieval_variants(engine: Engine, items: Sequence[QAItem]) -> dict[str, list[int | None]]:
    """Rank of the right page for every question under each fusion setting, from one pass of both
    retrievers (top 100 each): settings differ only in how the two lists are fused."""
    queries = [q.question for q in items]
    vectors, norms = engine.searcher.encode(queries)
    dense = search_vectors(engine.store, vectors, norms, DEPTH, "cosine")
    lexical = engine.searcher.lexical.search(queries, DEPTH)
    rows = engine.store.chunks_by_ids(
        sorted({h.chunk_id for hs in dense for h in hs} | {c for p in lexical for _, c in p})
    )

    def rank(item: QAItem, fused: Sequence[int]) -> int | None:
        for i, cid in enumerate(fused[:5], 1):
            row = rows.get(cid)
            if row is not None and row.document == item.document and row.page in item.pages:
                return i
        return None

    variants: dict[str, Callable[[int], list[int]]] = {}
    for depth in (10, 20, 50):
        for w in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
            variants[f"convex w={w} depth={depth}"] = lambda j, w=w, depth=depth: _ids(
                fuse_scores([(h.score, h.chunk_id) for h in dense[j][:depth]], lexical[j][:depth], 5, dense_weight=w)
            )
        variants[f"rrf k=60 depth={depth}"] = lambda j, depth=depth: _ids(
            fuse([h.chunk_id for h in dense[j][:depth]], lexical[j][:depth], 5)
        )
    variants["dense"] = lambda j: [h.chunk_id for h in dense[j][:5]]
    variants["bm25"] = lambda j: [c for _, c in lexical[j][:5]]
    return {name: [rank(q, f(j)) for j, q in enumerate(items)] for name, f in variants.items()}


def _ids(fused: Sequence[Fused]) -> list[int]:
    return [f.chunk_id for f in fused]


def cross_validate(items: Sequence[QAItem], variants: dict[str, list[int | None]]) -> tuple[float, float, list[str]]:
    """Held-out (hit@5, MRR) averaged over folds, each fold scored with the setting best on the others."""
    hits, mrrs, chosen = [], [], []
    for f in range(FOLDS):
        train = [i for i, q in enumerate(items) if fold_of(q) != f]
        test = [i for i, q in enumerate(items) if fold_of(q) == f]

        def score(name: str, idx: list[int]) -> float:
            h, m = rank_metrics([items[i] for i in idx], [variants[name][i] for i in idx])
            return h + m

        best = max(sorted(variants), key=lambda name: score(name, train))
        h, m = rank_metrics([items[i] for i in test], [variants[best][i] for i in test])
        hits.append(h)
        mrrs.append(m)
        chosen.append(best)
    return statistics.mean(hits), statistics.mean(mrrs), chosen


Row = tuple[float, bool, bool]  # (best cosine, the answer has the fact, answerable)


def answers(engine: Engine, items: Sequence[QAItem]) -> list[Row]:
    """Per question, with the default retrieval and every answer given (each threshold is applied to
    the same answers afterwards, as `ask` decides `grounded`: best cosine below it = refused)."""
    out = []
    hits = engine.search([q.question for q in items])
    for q, hs in zip(items, hits, strict=True):
        text = engine.answerer.stream(q.question, hs, refuse=False).result().text.lower()
        top = max((h.score for h in hs), default=-1.0)
        out.append((top, any(a.lower() in text for a in q.answer_contains), q.answerable))
    return out


def refusal_rates(rows: Sequence[Row], t: float) -> tuple[float, float, float]:
    """(answer-contains, answerable refused, unanswerable refused) at threshold t."""
    a = [r for r in rows if r[2]]
    u = [r for r in rows if not r[2]]
    contains = sum(1 for top, ok, _ in a if ok and top >= t) / max(1, len(a))
    refused_a = sum(1 for top, _, _ in a if top < t) / max(1, len(a))
    refused_u = sum(1 for top, _, _ in u if top < t) / max(1, len(u))
    return contains, refused_a, refused_u


def cross_validate_threshold(items: Sequence[QAItem], rows: Sequence[Row]) -> tuple[float, float, float, list[float]]:
    """Held-out rates with the threshold chosen on the other folds: the most unanswerable questions
    refused plus answers with the fact, with at most 5% of answerable questions refused; ties go to
    the lower threshold."""
    grid = [round(0.30 + 0.01 * i, 2) for i in range(31)]
    held: list[tuple[float, float, float]] = []
    chosen: list[float] = []
    for f in range(FOLDS):
        train = [r for r, q in zip(rows, items, strict=True) if fold_of(q) != f]
        test = [r for r, q in zip(rows, items, strict=True) if fold_of(q) == f]
        ok = [t for t in grid if refusal_rates(train, t)[1] <= 0.05] or [grid[0]]

        def gain(t: float, train: list[Row] = train) -> tuple[float, float]:
            c, _, ru = refusal_rates(train, t)
            return c + ru, -t

        best = max(ok, key=gain)
        chosen.append(best)
        held.append(refusal_rates(test, best))
    c, ra, ru = (statistics.mean(h[i] for h in held) for i in range(3))
    return c, ra, ru, chosen


def plain_script(files: list[Path], items: Sequence[QAItem], embedder: Embedder) -> tuple[float, float]:
    """800-character windows per page, MiniLM, exact search: (hit@5, MRR)."""
    texts: list[str] = []
    where: list[tuple[str, int]] = []
    for name, p in readable_pages(files):
        for s in range(0, max(1, len(p.text)), 800):
            texts.append(p.text[s : s + 800])
            where.append((name, p.number))
    vecs = embedder.encode_passage(texts)
    index = faiss.IndexFlatIP(vecs.shape[1])
    index.add(vecs)
    _, ids = index.search(embedder.encode_query([q.question for q in items]), 5)
    ranks: list[int | None] = []
    for q, row in zip(items, ids, strict=True):
        ranks.append(
            next((i for i, j in enumerate(row, 1) if where[j][0] == q.document and where[j][1] in q.pages), None)
        )
    return rank_metrics(items, ranks)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out")
    args = ap.parse_args()
    files = corpus(args.shared)
    dev = load_qa(args.shared / "eval" / "dev" / "qa.jsonl")
    visible = load_qa(args.shared / "eval" / "qa.jsonl")
    embedder = shared_embedder()
    print("| setup | set | hit@5 | MRR | answer has the fact | answerable refused | unanswerable refused |")
    print("|---|---|---|---|---|---|---|")
    for name, items in (("dev", dev), ("visible", visible)):
        h, m = plain_script(files, items, embedder)
        print(f"| plain script (800 chars, MiniLM, flat) | {name} | {h:.3f} | {m:.3f} | - | - | - |")
    setups = (
        ("without chunk context", Settings(chunk_context=False)),
        ("chunk context in BM25 and embeddings", Settings(embed_context=True)),
        ("chunk context in BM25 only (default)", Settings()),
    )
    for label, base in setups:
        name = f"devkb-context-{int(base.chunk_context)}{int(base.embed_context)}-{chunking_key(base)}"
        settings = replace(base, data_dir=args.work / name)
        engine = Engine(settings, embedder=embedder)
        build(engine, files)
        for name, items in (("dev", dev), ("visible", visible)):
            report = engine.evaluate(items, [settings.mode], answers=True)[settings.mode]
            print(
                f"| {label}, defaults | {name} | {report.hit_at_5:.3f} | {report.mrr:.3f} | "
                f"{report.answer_contains:.3f} | {report.refused_answerable:.3f} | {report.refused_unanswerable:.3f} |"
            )
            if name == "dev":
                print("\n".join(kind_rows(report)))
        variants = retrieval_variants(engine, dev)
        h, m, chosen = cross_validate(dev, variants)
        print(f"| {label}, fusion chosen by 5-fold CV | dev held-out | {h:.3f} | {m:.3f} | - | - | - |")
        print(f"|   chosen per fold: {'; '.join(chosen)} | | | | | | |")
        rows = answers(engine, dev)
        c, ra, ru, ts = cross_validate_threshold(dev, rows)
        print(f"| {label}, refusal threshold by 5-fold CV | dev held-out | - | - | {c:.3f} | {ra:.3f} | {ru:.3f} |")
        print(f"|   thresholds per fold: {ts} | | | | | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
