"""Ingest speed: pages/s and chunks/s for ../shared/corpus/hr into a fresh knowledge base.

Times each stage of each file (parse, chunk+embed+save) and prints a table. The model load is timed
separately: it happens once per process. Not a test: a measurement on a shared, noisy machine, so run
it a few times (`--repeat`) and read the median.

    python benchmarks/ingest.py [--shared ../shared] [--repeat 3] [--precision auto|fp32|bf16]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag_core.config import Settings  # noqa: E402
from rag_core.embedding import Embedder  # noqa: E402
from rag_core.engine import Engine  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    args = ap.parse_args()
    files = sorted((args.shared / "corpus" / "hr").iterdir())
    if not files:
        print(f"no files under {args.shared / 'corpus' / 'hr'}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    embedder = Embedder(precision=args.precision)
    load_s = time.perf_counter() - t0
    runs: list[tuple[float, int, int]] = []
    per_file: dict[str, list[tuple[float, int, int]]] = {}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            engine = Engine(Settings(data_dir=Path(tmp), precision=args.precision), embedder=embedder)
            total_s, pages, chunks = 0.0, 0, 0
            for f in files:
                t = time.perf_counter()
                r = engine.ingest_paths([f])[0]
                dt = time.perf_counter() - t
                per_file.setdefault(f.name, []).append((dt, r.pages, r.chunks))
                total_s += dt
                pages += r.pages
                chunks += r.chunks
            runs.append((total_s, pages, chunks))
    print(f"\nIngest of {len(files)} files from corpus/hr, {embedder!r}, model load {load_s:.1f} s")
    print(f"median of {args.repeat} run(s)\n")
    print(f"| {'file':<58} | pages | chunks | seconds | pages/s | chunks/s |")
    print(f"|{'-' * 60}|-------|--------|---------|---------|----------|")
    for name, rows in per_file.items():
        dt = statistics.median(r[0] for r in rows)
        p, c = rows[0][1], rows[0][2]
        print(f"| {name[:58]:<58} | {p:5d} | {c:6d} | {dt:7.1f} | {p / dt:7.1f} | {c / dt:8.1f} |")
    total = statistics.median(r[0] for r in runs)
    p, c = runs[0][1], runs[0][2]
    print(f"| {'all':<58} | {p:5d} | {c:6d} | {total:7.1f} | {p / total:7.1f} | {c / total:8.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
