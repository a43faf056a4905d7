"""Retrieval quality on the shared eval set: the engine at several chunk sizes vs a plain baseline.

Ingests ../shared/corpus/hr and ../shared/corpus/scale into a fresh temp KB per configuration and
scores ../shared/eval/qa.jsonl (hit@1, hit@3, hit@5, MRR). The baseline, measured in the same run, is
the plain script the engine must beat: pypdf text per page, 150-word chunks, no overlap, MiniLM, flat
index.

    python benchmarks/eval_retrieval.py [--sizes 96:24,128:32,200:40] [--shared ../shared]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag_core.config import Settings  # noqa: E402
from rag_core.embedding import Embedder  # noqa: E402
from rag_core.evaluation import EvalReport, evaluate, load_qa  # noqa: E402
from rag_core.loaders import LoadError, load_path  # noqa: E402
from rag_core.pipeline import Engine  # noqa: E402
from rag_core.retrieval import Hit  # noqa: E402


def corpus_files(shared: Path) -> list[Path]:
    return sorted((shared / "corpus" / "hr").iterdir()) + sorted((shared / "corpus" / "scale").iterdir())


def run_engine(files: list[Path], qa: Path, embedder: Embedder, tokens: int, overlap: int) -> tuple[EvalReport, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), chunk_tokens=tokens, chunk_overlap=overlap)
        engine = Engine(settings, embedder=embedder)
        t0 = time.perf_counter()
        engine.ingest_paths(files)
        elapsed = time.perf_counter() - t0
        report = evaluate(load_qa(qa), lambda qs: engine.search(qs, k=5), k=5)
    return report, elapsed


def run_baseline(files: list[Path], qa: Path, embedder: Embedder, words: int = 150) -> EvalReport:
    """The plain script: 150-word chunks per page, no overlap, exact inner-product search."""
    texts: list[str] = []
    where: list[tuple[str, int]] = []
    for f in files:
        try:
            pages = load_path(f).pages
        except LoadError:
            continue
        for p in pages:
            w = p.text.split()
            for i in range(0, len(w), words):
                texts.append(" ".join(w[i : i + words]))
                where.append((f.name, p.number))
    vecs = embedder.encode(texts)
    index = faiss.IndexFlatIP(vecs.shape[1])
    index.add(vecs)

    def search(questions: list[str]) -> list[list[Hit]]:
        q = embedder.encode(questions)
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
    ap.add_argument("--sizes", default="96:24,128:32,200:40", help="chunk_tokens:overlap,...")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    args = ap.parse_args()
    qa = args.shared / "eval" / "qa.jsonl"
    if not qa.exists():
        print(f"no eval set at {qa}: pass --shared DIR", file=sys.stderr)
        return 2
    files = corpus_files(args.shared)
    embedder = Embedder(precision=args.precision)
    rows = []
    base = run_baseline(files, qa, embedder)
    rows.append(("baseline: 150 words, no overlap", base, float("nan")))
    for spec in args.sizes.split(","):
        tokens, overlap = (int(x) for x in spec.split(":"))
        report, elapsed = run_engine(files, qa, embedder, tokens, overlap)
        rows.append((f"engine: {tokens} tokens, overlap {overlap}", report, elapsed))
    print(f"\nRetrieval on {qa.name} ({base.n} answerable questions), embedder {embedder!r}\n")
    print(f"| {'configuration':<36} | hit@1 | hit@3 | hit@5 |  MRR  | ingest s |")
    print(f"|{'-' * 38}|-------|-------|-------|-------|----------|")
    for name, r, elapsed in rows:
        t = "" if elapsed != elapsed else f"{elapsed:.0f}"
        print(f"| {name:<36} | {r.hit_at[1]:.3f} | {r.hit_at[3]:.3f} | {r.hit_at[5]:.3f} | {r.mrr:.3f} | {t:>8} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
