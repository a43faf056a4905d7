"""How soon the Analysis map is usable after a large ingest: the previous map with the new chunks placed
by their nearest neighbours (what the page shows at once) against the full t-SNE it waits for otherwise.

Builds a knowledge base of `--old` chunks in clustered random 384-dim unit vectors (a real model's
vectors are not needed to time the projection: its cost depends on the count and the dimension), maps
it, ingests `--new` more, then times, for the new state: the approximate map (`wait=False`) and the
map figure drawn from it, and the full map (`wait=True`). It also prints how many of each chunk's
10 nearest neighbours both maps keep, so the approximation's quality is measured, not assumed.

    python benchmarks/stale_map.py [--old 2000] [--new 2000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag_core import maps
from rag_core.figures import map_figure
from rag_core.store import KnowledgeStore, LocalStore
from rag_core.types import Chunk, FloatArray, NewDocument, Page, sha256_hex

DIM = 384


def _vectors(n: int, seed: int, topics: int = 20) -> FloatArray:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).normal(size=(topics, DIM)) * 0.6  # shared topics, old and new
    v = centres[rng.integers(0, topics, n)] + rng.normal(size=(n, DIM)) * 0.15
    out: FloatArray = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    return out


def _add(kb: LocalStore, name: str, n: int, seed: int) -> None:
    data = f"{name}-{n}-{seed}".encode()
    kb.add(
        NewDocument(
            name=name,
            data=data,
            sha256=sha256_hex(data),
            kind="txt",
            pages=[Page(1, "x")],
            page_count=1,
            chunks=[Chunk(1, 0, 1, f"{name} passage {i}", 3) for i in range(n)],
            vectors=_vectors(n, seed),
            norms=np.ones(n, np.float32),
            embedder="synthetic",
        )
    )


def _no_background_map(store: KnowledgeStore, method: maps.Method = "tsne", perplexity: float = 30.0) -> None:
    """Stands in for `maps.schedule_map`: time what the page does, not a map computed meanwhile."""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", type=int, default=2000, help="chunks mapped before the ingest")
    ap.add_argument("--new", type=int, default=2000, help="chunks the ingest adds")
    args = ap.parse_args()
    maps.schedule_map = _no_background_map
    with tempfile.TemporaryDirectory() as tmp:
        kb = LocalStore(Path(tmp) / "kb")
        _add(kb, "before.txt", args.old, 1)
        t = time.perf_counter()
        maps.embedding_map(kb)
        first = time.perf_counter() - t
        _add(kb, "ingested.txt", args.new, 2)
        t = time.perf_counter()
        stale = maps.embedding_map(kb, wait=False)
        map_figure(stale)
        shown = time.perf_counter() - t
        t = time.perf_counter()
        full = maps.embedding_map(kb)
        computed = time.perf_counter() - t
        kept_stale = maps.knn_preservation(stale.vectors, stale.coords)
        kept_full = maps.knn_preservation(full.vectors, full.coords)
    print(f"map of {args.old} chunks before the ingest: {first:.1f} s")
    print(
        f"after +{args.new} chunks: approximate map and its figure {shown:.2f} s "
        f"({stale.placed} placed); full t-SNE {computed:.1f} s"
    )
    print(f"10-NN preservation: approximate {kept_stale:.3f}, full {kept_full:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
