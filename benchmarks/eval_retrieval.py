"""Retrieval quality on the shared eval set: chunk sizes x retrieval modes vs a plain baseline.

Ingests ../shared/corpus/hr and ../shared/corpus/scale into a fresh temp KB per chunk size and scores
../shared/eval/qa.jsonl (hit@1, hit@3, hit@5, MRR) with dense, BM25 and hybrid retrieval (both fusion
methods), plus the median latency of one query (embedding + search). The baseline, measured in the
same run, is the plain script the engine must beat: pypdf text per page, 150-word chunks, no overlap,
MiniLM, flat index.

    python benchmarks/eval_retrieval.py [--sizes 128:32,200:40] [--shared ../shared]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag_core.config import Settings  # noqa: E402
from rag_core.embedding import Embedder  # noqa: E402
from rag_core.engine import Engine  # noqa: E402
from rag_core.evaluation import EvalReport, evaluate, load_qa  # noqa: E402
from rag_core.loaders import LoadError, load_path  # noqa: E402
from rag_core.search import Hit  # noqa: E402
from rag_core.types import Page  # noqa: E402


def corpus_files(shared: Path) -> list[Path]:
    return sorted((shared / "corpus" / "hr").iterdir()) + sorted((shared / "corpus" / "scale").iterdir())


VARIANTS: list[tuple[str, dict[str, object]]] = [
    ("dense", {"mode": "dense"}),
    ("bm25", {"mode": "bm25"}),
    ("hybrid rrf (k=60, depth 50)", {"mode": "hybrid", "fusion": "rrf", "rrf_k": 60.0, "dense_weight": 1.0,
                                     "fusion_depth": 50}),
    ("hybrid convex (default)", {"mode": "hybrid"}),
]  # fmt: skip


def run_engine(
    files: list[Path], qa: Path, embedder: Embedder, tokens: int, overlap: int
) -> tuple[list[tuple[str, EvalReport, float]], float]:
    """Ingest once at this chunk size, then score every retrieval variant on the same KB."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Settings(data_dir=Path(tmp), chunk_tokens=tokens, chunk_overlap=overlap)
        t0 = time.perf_counter()
        Engine(base, embedder=embedder).ingest_paths(files)
        elapsed = time.perf_counter() - t0
        items = load_qa(qa)
        for name, changes in VARIANTS:
            engine = Engine(base.replace(**changes), embedder=embedder)
            report = evaluate(items, lambda qs, e=engine: e.search(qs, k=5), k=5)  # type: ignore[misc]
            engine.search(items[0].question, k=5)  # warm caches before timing
            latencies = []
            for q in items:
                t = time.perf_counter()
                engine.search(q.question, k=5)
                latencies.append(time.perf_counter() - t)
            out.append((name, report, statistics.median(latencies) * 1000))
    return out, elapsed


def readable_pages(files: list[Path]) -> Iterator[tuple[str, Page]]:
    """(file name, page) of every page the loader reads; files it cannot read are skipped, as a plain
    script would skip them."""
    for f in files:
        try:
            pages = load_path(f).pages
        except LoadError:
            continue
        for p in pages:
            yield f.name, p


def run_baseline(files: list[Path], qa: Path, embedder: Embedder, words: int = 150) -> EvalReport:
    """The plain script: 150-word chunks per page, no overlap, exact inner-product search."""
    texts: list[str] = []
    where: list[tuple[str, int]] = []
    for name, p in readable_pages(files):
        w = p.text.split()
        for i in range(0, len(w), words):
            texts.append(" ".join(w[i : i + words]))
            where.append((name, p.number))
    vecs = embedder.encode_passage(texts)
    index = faiss.IndexFlatIP(vecs.shape[1])
    index.add(vecs)

    def search(questions: list[str]) -> list[list[Hit]]:
        q = embedder.encode_query(questions)
        scores, ids = index.search(np.atleast_2d(q), 5)
        out = []
        for srow, irow in zip(scores, ids, strict=True):
            out.append(
                [
                    Hit(r + 1, float(s), where[i][0], "", where[i][1], int(i), texts[i])
                    for r, (s, i) in enumerate(zip(srow, irow, strict=True))
                ]
            )
        return out

    return evaluate(load_qa(qa), search, k=5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--sizes", default="128:32,200:40", help="chunk_tokens:overlap,...")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    args = ap.parse_args()
    qa = args.shared / "eval" / "qa.jsonl"
    if not qa.exists():
        print(f"no eval set at {qa}: pass --shared DIR", file=sys.stderr)
        return 2
    files = corpus_files(args.shared)
    embedder = Embedder(precision=args.precision)
    base = run_baseline(files, qa, embedder)
    print(f"\nRetrieval on {qa.name} ({base.n} answerable questions), embedder {embedder!r}\n")
    print(f"| {'chunks':<22} | {'retrieval':<28} | hit@1 | hit@3 | hit@5 |  MRR  | query ms (p50) |")
    print(f"|{'-' * 24}|{'-' * 30}|-------|-------|-------|-------|----------------|")
    r = base
    print(
        f"| {'150 words, no overlap':<22} | {'baseline: dense, flat':<28} | {r.hit_at[1]:.3f} | {r.hit_at[3]:.3f} "
        f"| {r.hit_at[5]:.3f} | {r.mrr:.3f} | {'':>14} |"
    )
    for spec in args.sizes.split(","):
        tokens, overlap = (int(x) for x in spec.split(":"))
        results, elapsed = run_engine(files, qa, embedder, tokens, overlap)
        label = f"{tokens} tok, overlap {overlap}"
        for name, r, ms in results:
            print(
                f"| {label:<22} | {name:<28} | {r.hit_at[1]:.3f} | {r.hit_at[3]:.3f} | {r.hit_at[5]:.3f} "
                f"| {r.mrr:.3f} | {ms:14.1f} |"
            )
        note = f"(ingest of hr + scale: {elapsed:.0f} s)"
        print(f"| {label:<22} | {note:<28} |       |       |       |       |                |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
